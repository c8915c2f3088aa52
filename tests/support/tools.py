"""The ecosystem tools the GitOps and monitoring tests run for real (helm, promtool,
argocd-lua), built from source by ``scripts/build-tools.sh`` into the shared cache.

Warm, the script only prints the cached paths; cold, it builds through the Go module
proxy (minutes). Never skipped: a test that needs a tool gets it or fails saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from agentcred_testbed import procs
from support.kube import REPO

BUILD_SCRIPT = REPO / "scripts" / "build-tools.sh"
FIXTURES = {"helm": "helm", "promtool": "promtool", "argocd_lua": "argocd-lua"}


class Prebuild:
    """Builds started in the background when the session begins, for what its tests use:
    ``build-tools.sh`` (helm, promtool, argocd-lua) and, for the node suite,
    ``build-kube.sh node`` (kubelet, kube-scheduler). A cold build (promtool: 7-17 min on 2
    cores) then runs while the earlier suites wait on their servers, not after them; a
    cached one ends at once. Both scripts take a lock, so whoever needs a binary first
    waits for the build under way."""

    procs: ClassVar[list[subprocess.Popen[bytes]]] = []

    @classmethod
    def start(cls, argv: list[str], log: Path) -> None:
        env = dict(os.environ, AGENTCRED_CACHE=str(procs.cache_dir()))
        with log.open("ab") as out:
            cls.procs.append(
                subprocess.Popen(
                    ["nice", "-n", "10", "bash", *argv],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=out,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own group: stop() ends the go builds too
                )
            )

    @classmethod
    def stop(cls) -> None:
        """A run that ends before its builds were needed (-x, a selection) ends them."""
        for proc in cls.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        cls.procs.clear()


def build_tool(name: str) -> Path:
    """The tool's path; built now if needed (a background build of it under way: waited
    for through the script's lock, then the warm path)."""
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
