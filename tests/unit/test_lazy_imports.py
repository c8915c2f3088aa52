"""kubernetes_asyncio's generated classes load on first use, and every name still resolves."""

from __future__ import annotations

import json
import subprocess
import sys

EAGER = """
import json, kubernetes_asyncio.client as c
print(json.dumps({"all": sorted(c.__all__), "models": len(vars(c.models))}))
"""

LAZY = """
import json, sys
import agentcred, kopf, agentcred.cli, agentcred.handlers
loaded = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.")]
import kubernetes_asyncio.client as c
from kubernetes_asyncio.client import ApiClient, CoreV1Api, V1ObjectMeta
from kubernetes_asyncio.client.exceptions import ApiException
pod = c.models.V1Pod(metadata=V1ObjectMeta(name="x"))
try:
    c.NoSuchThing
    missing = "resolved"
except AttributeError:
    missing = "AttributeError"
print(json.dumps({
    "loaded": len(loaded), "all": sorted(c.__all__), "version": c.__version__,
    "pod": pod.metadata.name, "missing": missing,
    "resolved": all(getattr(c, n) is not None for n in c.__all__),
}))
"""


def _run(code: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_importing_the_operator_does_not_load_the_generated_client() -> None:
    lazy = _run(LAZY)
    assert isinstance(lazy["loaded"], int)
    assert lazy["loaded"] < 60  # eagerly: every API and model module, over 800


def test_every_generated_name_still_resolves_on_first_use() -> None:
    eager, lazy = _run(EAGER), _run(LAZY)
    assert lazy["all"] == eager["all"]
    assert lazy["resolved"] is True
    assert lazy["pod"] == "x"
    assert lazy["version"]
    assert lazy["missing"] == "AttributeError"
