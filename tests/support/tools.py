"""The ecosystem tools the GitOps and monitoring tests run for real (helm, promtool,
argocd-lua), built from source by ``scripts/build-tools.sh`` into the shared cache.

Warm, the script only prints the cached paths; cold, it builds through the Go module
proxy (minutes). Never skipped: a test that needs a tool gets it or fails saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from agentcred_testbed import procs
from support.kube import REPO

BUILD_SCRIPT = REPO / "scripts" / "build-tools.sh"


def build_tool(name: str) -> Path:
    env = dict(os.environ, AGENTCRED_CACHE=str(procs.cache_dir()))
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), name],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines, f"{BUILD_SCRIPT} {name} failed ({result.returncode})"
    path = Path(lines[-1])
    assert os.access(path, os.X_OK), f"{path} is not an executable"
    return path


def argocd_health(binary: Path, script: Path, obj: Path, libs: str) -> dict[str, Any]:
    """Argo CD's verdict on ``obj`` (``libs``: builtin or configmap, see tools/argocd-lua)."""
    result = subprocess.run(
        [str(binary), "health", "--libs", libs, "--script", str(script), str(obj)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"{script} on {obj} ({libs}): {result.stderr}"
    verdict: dict[str, Any] = json.loads(result.stdout)
    return verdict
