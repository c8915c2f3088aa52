"""Start and stop the testbed's server processes by recorded PID.

Every server the testbed starts is a child we launch in its own session (process
group), with its output in ``<state>/logs/<name>.log`` and its PID in
``<state>/pids/<name>.pid``. Stopping reads that file and signals the group, so
``testbed down`` stops exactly what ``testbed up`` started, even from another
process, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class TestbedError(RuntimeError):
    """A testbed component could not be obtained or started."""


@dataclass(frozen=True)
class StateDir:
    """The folder holding one testbed's pids, logs, data and env file."""

    root: Path

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def data(self, name: str) -> Path:
        path = self.root / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def ensure(self) -> None:
        for sub in (self.pids, self.logs):
            sub.mkdir(parents=True, exist_ok=True)


def venv_tool(name: str, extra: str) -> Path:
    """``name`` from the same virtualenv as the running Python, never from PATH."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise TestbedError(f"{path} not found: install the dev extra ({extra}) in this venv")
    return path


def cache_dir() -> Path:
    """Downloads and builds shared by every checkout (never inside git)."""
    base = os.environ.get("AGENTCRED_CACHE") or str(Path.home() / ".cache" / "agentcred")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


PORT_OVERRIDE = "AGENTCRED_TESTBED_PORT"


def port_for(env: Mapping[str, str]) -> int:
    """The port a component listens on: free, unless a test restarts a server in place
    (it passes ``AGENTCRED_TESTBED_PORT`` so clients keep their address)."""
    fixed = env.get(PORT_OVERRIDE)
    return int(fixed) if fixed else free_port()


def start(
    state: StateDir,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Launch ``argv`` in the background in its own process group; record its PID."""
    state.ensure()
    log = (state.logs / f"{name}.log").open("ab")
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
            user=user,
        )
    except OSError as exc:
        raise TestbedError(f"{name}: cannot start {argv[0]}: {exc}") from exc
    finally:
        log.close()
    (state.pids / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def pid_of(state: StateDir, name: str) -> int | None:
    try:
        return int((state.pids / f"{name}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def running(state: StateDir, name: str) -> bool:
    pid = pid_of(state, name)
    return pid is not None and alive(pid)


def stop(state: StateDir, name: str, *, timeout: float = 15.0) -> None:
    """SIGTERM the recorded process group, SIGKILL it after ``timeout``."""
    pid = pid_of(state, name)
    pidfile = state.pids / f"{name}.pid"
    if pid is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.1)
        if not _group_alive(pid):
            break
    pidfile.unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    """True if a non-zombie process is in the group (zombies of others linger)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def log_tail(state: StateDir, name: str, lines: int = 30) -> str:
    try:
        text = (state.logs / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    state: StateDir,
    name: str,
    ready: Callable[[], bool],
    *,
    timeout: float = 60.0,
    what: str = "ready",
) -> None:
    """Poll ``ready`` until true; fail fast with the log tail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not running(state, name):
            raise TestbedError(f"{name} exited before {what}:\n{log_tail(state, name)}")
        time.sleep(0.2)
    raise TestbedError(f"{name} not {what} after {timeout:.0f}s:\n{log_tail(state, name)}")


def serve(
    state: StateDir,
    name: str,
    argv: Sequence[str],
    ready_url: str,
    *,
    timeout: float,
    what: str,
    context: ssl.SSLContext | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Start the server ``argv`` as ``name`` and wait until ``ready_url`` answers."""
    start(state, name, argv, env=env, cwd=cwd)
    wait_until(state, name, lambda: http_ok(ready_url, context=context), timeout=timeout, what=what)


def serve_local(
    state: StateDir,
    name: str,
    env: Mapping[str, str],
    command: Callable[[int], Sequence[str]],
    ready_path: str,
    *,
    timeout: float,
) -> str:
    """Start ``command(port)`` as ``name`` on 127.0.0.1 (on :func:`port_for`'s port) and wait
    until ``ready_path`` answers; return its ``http://`` endpoint. A server an earlier
    start left recorded under ``name`` is stopped first, never orphaned."""
    stop(state, name)
    port = port_for(env)
    endpoint = f"http://127.0.0.1:{port}"
    serve(
        state,
        name,
        command(port),
        f"{endpoint}{ready_path}",
        timeout=timeout,
        what=f"serving on {endpoint}",
    )
    return endpoint


def http_ok(url: str, *, context: ssl.SSLContext | None = None, ok: Sequence[int] = ()) -> bool:
    """True if ``url`` answers 2xx/3xx, or with one of the statuses in ``ok``."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context):  # noqa: S310
            return True
    except urllib.error.HTTPError as exc:
        return exc.code in ok
    except (OSError, ValueError):
        return False


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
