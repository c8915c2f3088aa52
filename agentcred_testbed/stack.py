"""The whole local testbed: start every component, write ``.testbed/env``, stop them all.

Three chains start side by side because they are independent and the JVM and the
control plane are the slow parts: PostgreSQL -> Kubernetes -> OpenBao (OpenBao's
database engine needs PostgreSQL and its kubernetes auth method needs the
apiserver), the cloud emulators (moto, drongo, Lowkey Vault), and the trace store
(Jaeger, whose first build is the longest of all). A testbed whose
processes are all still running is reused instead of started twice.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

from agentcred_testbed import drongo, jaeger, kube, lowkey, moto, node, openbao, postgres, procs
from agentcred_testbed.procs import StateDir, TestbedError

CHAINS: tuple[tuple[ModuleType, ...], ...] = (
    (postgres, kube, openbao),
    (moto, drongo),
    # Jaeger alone: its cold build (jaeger.py) is long and must hold up no other server.
    (jaeger,),
)
# The node (node.py) is started on demand (node.up), after the rest; listed last so that
# ``down`` stops it first.
ALL: tuple[ModuleType, ...] = (*(m for chain in CHAINS for m in chain), lowkey, node)


def chains() -> tuple[tuple[ModuleType, ...], ...]:
    """The chains to start: Lowkey Vault (Azure) only when wanted (see lowkey.wanted)."""
    return (*CHAINS, (lowkey,)) if lowkey.wanted() else CHAINS


def started(state: StateDir) -> tuple[ModuleType, ...]:
    extra = (node,) if node.wanted() else ()
    return (*(m for chain in chains() for m in chain), *extra)


ENV_FILE = "env"


def default_root() -> Path:
    return Path(__file__).resolve().parents[1] / ".testbed"


def read_env(state: StateDir) -> dict[str, str]:
    env: dict[str, str] = {}
    path = state.root / ENV_FILE
    if not path.exists():
        return env
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


def all_running(state: StateDir) -> bool:
    """Every component of this testbed runs. One started before Jaeger joined the testbed
    (its env has no ``JAEGER_QUERY_URL``) is reused as it is: the trace test then fails
    saying so, and nothing else needs Jaeger."""
    has_jaeger = jaeger.QUERY_URL in read_env(state)
    wanted = [m for m in started(state) if m is not jaeger or has_jaeger]
    return all(procs.running(state, n) for m in wanted for n in m.NAMES)


def _run_chain(
    state: StateDir, chain: Sequence[ModuleType], log: Callable[[str], None]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for component in chain:
        started = time.monotonic()
        env.update(component.up(state, dict(env)))
        log(f"{component.__name__.rsplit('.', 1)[-1]} up in {time.monotonic() - started:.1f}s")
    return env


def up(state: StateDir, log: Callable[[str], None] = print) -> dict[str, str]:
    """Start everything (or reuse a running testbed) and return the exported env."""
    state.ensure()
    if (state.root / ENV_FILE).exists() and all_running(state):
        log(f"testbed already running ({state.root})")
        return read_env(state)
    down(state)
    env: dict[str, str] = {}
    try:
        with ThreadPoolExecutor(len(chains())) as pool:
            for result in [pool.submit(_run_chain, state, c, log) for c in chains()]:
                env.update(result.result())
        if node.wanted():
            env.update(node.up(state, env, log))
    except BaseException:
        down(state)
        raise
    write_env(state, env)
    return env


def write_env(state: StateDir, env: dict[str, str]) -> Path:
    path = state.root / ENV_FILE
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def down(state: StateDir) -> None:
    """Stop every recorded process, newest first; forget the env file."""
    procs.stop(state, "operator")  # started by `make dev`
    for component in reversed(ALL):
        component.down(state)
    (state.root / ENV_FILE).unlink(missing_ok=True)


def leftovers(state: StateDir) -> list[str]:
    """Names of recorded processes that are still alive (should be empty after down)."""
    names = ["operator", *(n for m in ALL for n in m.NAMES)]
    left = [n for n in names if procs.running(state, n)]
    return left + [x for x in node.leftovers(state) if x not in left]


__all__ = ["TestbedError", "default_root", "down", "leftovers", "read_env", "up"]
