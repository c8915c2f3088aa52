"""The Vault backend is a package split by concern; the registry still loads it lazily.

Starting the operator must not import hvac (nor any module of the package): the
registry imports ``agentcred.backends.vault`` when a CredentialBackend of kind
``vault`` is first used. Run in a fresh interpreter, since other tests import it.
"""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json, sys
import agentcred.cli, agentcred.handlers
before = sorted(m for m in sys.modules if m == "hvac" or m.startswith("agentcred.backends.vault"))
from agentcred.backends.registry import FACTORIES, load_factory
factory = load_factory(FACTORIES["vault"])
from agentcred.backends.vault import VaultBackend
print(json.dumps({
    "before": before,
    "hvac_after": "hvac" in sys.modules,
    "factory_builds": factory.__self__ is VaultBackend,
    "module": VaultBackend.__module__,
}))
"""


def test_the_vault_package_is_imported_only_when_the_registry_needs_it() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["before"] == []
    assert seen["hvac_after"] is True
    assert seen["factory_builds"] is True
    assert seen["module"] == "agentcred.backends.vault.backend"
