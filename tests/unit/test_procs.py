"""The testbed's process handling: a stopped component leaves no process behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agentcred_testbed import procs
from agentcred_testbed.procs import StateDir


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    script = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    pid = procs.start(state, "sleeper", [sys.executable, "-c", script])
    procs.wait_until(
        state, "sleeper", lambda: len(_group(pid)) >= 2, timeout=10, what="running with its child"
    )
    procs.stop(state, "sleeper", timeout=5)
    assert _group(pid) == []
    assert procs.pid_of(state, "sleeper") is None


def test_free_ports_are_distinct_and_unbound() -> None:
    ports = {procs.free_port() for _ in range(5)}
    assert len(ports) == 5
    assert not any(procs.port_open(p) for p in ports)


def _group(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return [m for m in members if m != os.getpid()]
