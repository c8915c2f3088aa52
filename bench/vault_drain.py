"""How fast does Vault itself drop dynamic database leases? The quarantine scenario's
Vault half, without the operator or the Kubernetes API in the way.

    python -m bench.vault_drain --size 200                  # the testbed's OpenBao
    python -m bench.vault_drain --size 200 --pprof out/     # with a CPU profile of Vault

N orphan tokens (as a kubernetes login makes them) each read one credential of the
testbed's dynamic PostgreSQL role (``database/creds/readonly``); then every token revokes
itself (``auth/token/revoke-self``, the call the operator makes for a session), ``threads``
at a time, while ``sys/leases/lookup`` is listed every ``POLL`` s. Printed: the time of
the revoke calls, and per lease the time until it left Vault's lease list (what the
quarantine scenario measures). Vault answers revoke-self at once and revokes the token's
leases in the background (its expiration manager), so the two differ: the second is
Vault's and PostgreSQL's work. ``--pprof DIR`` stores Vault's CPU profile and goroutine
dump taken during the drain (``go tool pprof -top DIR/vault-cpu.pprof``).

Everything it makes is gone when it ends (the tokens revoke themselves; the policy is
deleted). ``VAULT_ADDR``/``VAULT_TOKEN`` (root) select another Vault.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentcred_testbed import stack
from agentcred_testbed.procs import StateDir
from bench.recorder import summary
from bench.vaultapi import Vault, VaultError

DB_ROLE = "readonly"
POLICY = "agentcred-bench-drain"
POLL = 0.1


def _leases(vault: Vault, path: str) -> set[str]:
    return {f"{path}/{key}" for key in vault.list_keys(f"sys/leases/lookup/{path}/")}


def _issue(vault: Vault, path: str) -> tuple[str, str]:
    token = vault.write(
        "auth/token/create-orphan", {"policies": [POLICY], "ttl": "1h", "no_default_policy": False}
    )["auth"]["client_token"]
    return token, str(vault.read(path, token=token)["lease_id"])


def _revoke(vault: Vault, token: str) -> tuple[float, float]:
    """The call's duration, and when it returned (monotonic)."""
    started = time.monotonic()
    vault.write("auth/token/revoke-self", {}, token=token)
    ended = time.monotonic()
    return ended - started, ended


def _pprof(vault: Vault, seconds: int, out: Path) -> threading.Thread:
    def take() -> None:
        profile = vault.raw("sys/pprof/profile", {"seconds": seconds}, timeout=seconds + 30)
        (out / "vault-cpu.pprof").write_bytes(profile)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def _goroutines(vault: Vault, out: Path) -> None:
    (out / "vault-goroutines.txt").write_bytes(vault.raw("sys/pprof/goroutine", {"debug": 1}))


def run(
    vault: Vault, size: int, threads: int, pprof: Path | None, role: str = DB_ROLE
) -> dict[str, Any]:
    path = f"database/creds/{role}"
    vault.policy(POLICY, f'path "{path}" {{ capabilities = ["read"] }}')
    before = len(vault.list_keys("auth/token/accessors"))
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        issued = list(pool.map(lambda _: _issue(vault, path), range(size)))
    issue_seconds = time.monotonic() - started
    ours = {lease for _, lease in issued}
    live = ours & _leases(vault, path)
    profiler = None
    if pprof is not None:
        pprof.mkdir(parents=True, exist_ok=True)
        profiler = _pprof(vault, max(5, int(size / 50) + 5), pprof)
        time.sleep(0.5)  # the profile has started
    gone: dict[str, float] = {}
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        pending = [pool.submit(_revoke, vault, token) for token, _ in issued]
        dumped = False
        while len(gone) < len(live) and time.monotonic() - started < 300:
            now = time.monotonic()
            for lease in live - set(gone) - _leases(vault, path):
                gone[lease] = now - started
            if pprof is not None and not dumped and now - started > 1.0:
                _goroutines(vault, pprof)
                dumped = True
            time.sleep(POLL)
        results = [f.result() for f in pending]
    calls = [duration for duration, _ in results]
    calls_done = max(ended for _, ended in results) - started if results else 0.0
    if profiler is not None:
        profiler.join()
    with contextlib.suppress(VaultError):
        vault.call("DELETE", f"sys/policies/acl/{POLICY}")
    return {
        "role": role,
        "size": size,
        "threads": threads,
        "tokens_before": before,
        "issue_seconds": round(issue_seconds, 2),
        "issue_per_second": round(size / issue_seconds, 1) if issue_seconds else None,
        "leases": len(live),
        "revoke_call": summary(calls),
        "revoke_calls_seconds": round(calls_done, 2),
        "leases_gone": len(gone),
        "gone_latency": summary(list(gone.values())),
        "gone_per_second": round(len(gone) / max(gone.values()), 1) if gone else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vault_drain", description=__doc__)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--pprof", type=Path, default=None, help="folder for Vault's profiles")
    parser.add_argument("--role", default=DB_ROLE, help="the database role (database/creds/ROLE)")
    args = parser.parse_args(argv)
    if not 1 <= args.size <= 2000:
        parser.error("--size: 1..2000")
    env = stack.read_env(StateDir(stack.default_root()))
    address = os.environ.get("VAULT_ADDR") or env["VAULT_ADDR"]
    token = os.environ.get("VAULT_TOKEN") or env["VAULT_TOKEN"]
    vault = Vault(address, token, pool=max(32, args.threads))
    try:
        print(json.dumps(run(vault, args.size, args.threads, args.pprof, args.role), indent=2))
    finally:
        vault.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
