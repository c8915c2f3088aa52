"""Run the real operator (``.venv/bin/agentcred run``) as a child process for a test.

When the test run itself is measured (``make test`` runs pytest under ``coverage run``),
the operator runs under ``coverage run --parallel-mode`` too, writing its own data file
beside the run's (``make test`` combines them): the operator's lines count, and its PID is
still the operator's (coverage runs the program in its own process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AGENTCRED = Path(sys.executable).parent / "agentcred"
IMAGE_PATH = Path(__file__).parent / "image_path"  # hides what the operator's image lacks


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_lines() if line.startswith("{")]

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def operator_env(testbed_env: dict[str, str]) -> dict[str, str]:
    """What a test operator runs with: the testbed, a short re-issue overlap and restore
    interval (the 30 s defaults are harness tests: tests/unit/core/), debug logs."""
    return {
        **testbed_env,
        "AGENTCRED_REISSUE_OVERLAP": "3s",
        "AGENTCRED_RESTORE_INTERVAL": "2s",
        "AGENTCRED_LOG_LEVEL": "DEBUG",
        "AGENTCRED_SWEEP_INTERVAL": "3s",
    }


def measured(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` under ``coverage run`` if this test process is measured (``env`` then gets
    the data file's absolute path: the operator may run elsewhere), else ``argv``."""
    try:
        import coverage  # noqa: PLC0415 - only when installed (the dev extra)
    except ImportError:
        return argv
    current = coverage.Coverage.current()
    if current is None:
        return argv
    env["COVERAGE_FILE"] = str(Path(current.config.data_file).resolve())
    if current.config.config_file:
        env["COVERAGE_RCFILE"] = str(Path(current.config.config_file).resolve())
    return [sys.executable, "-m", "coverage", "run", "--parallel-mode", *argv]


def start_operator(env: dict[str, str], log_path: Path, *args: str) -> OperatorProcess:
    full = {**os.environ, **env, "AGENTCRED_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    # The operator must work without the admin's credentials (and hvac would pick up
    # VAULT_TOKEN from the environment): it only gets what a real deployment has.
    for name in ("VAULT_TOKEN", "PGPASSWORD", "PGUSER"):
        full.pop(name, None)
    # Nor the tests' synchronous kubernetes client (not in the image; Kopf would import it).
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(IMAGE_PATH), full.get("PYTHONPATH")]))
    log = log_path.open("ab")
    proc = subprocess.Popen(
        measured([str(AGENTCRED), "run", *args], full),
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    return OperatorProcess(proc, log_path)


@contextmanager
def running_operator(env: dict[str, str], log_path: Path, *args: str) -> Iterator[OperatorProcess]:
    op = start_operator(env, log_path, *args)
    try:
        yield op
    finally:
        if op.proc.poll() is None:
            op.proc.send_signal(signal.SIGTERM)
            try:
                op.proc.wait(30)
            except subprocess.TimeoutExpired:
                op.kill()
