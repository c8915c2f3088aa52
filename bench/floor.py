"""The plain-script floor: the same API calls as the operator, and nothing else.

For each task: a TokenRequest for the task's ServiceAccount (audience ``vault``), a
Vault kubernetes login with that token, the read (KV v2, or the dynamic database
path), and the creation of a Secret holding the fields. 16 threads, one pooled HTTP
session per server. Its throughput is what a client that does no bookkeeping at all
achieves on this machine against these servers; the operator's throughput is reported
as a ratio of it, measured in the same run.

What it leaves is removed untimed afterwards: its Vault tokens (revoked by accessor,
which ends dynamic leases too) and its Secrets (not labelled as the operator's, so the
operator never sees them).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.kubeapi import Kube, ns_path
from bench.recorder import summary
from bench.vaultapi import Vault
from bench.workload import NAMESPACE, ROLE, Identity, Workload, parallel

FLOOR_LABEL = "bench.agentcred.io/floor"
TOKEN_SECONDS = 600


def _one(
    kube: Kube, vault: Vault, workload: Workload, name: str, identity: Identity
) -> tuple[float, str]:
    started = time.monotonic()
    token_path = f"{ns_path(NAMESPACE, 'serviceaccounts')}/{identity.service_account}/token"
    review = kube.create(
        token_path,
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": ["vault"], "expirationSeconds": TOKEN_SECONDS},
        },
    )
    auth = vault.login_kubernetes(ROLE, review["status"]["token"])
    if workload.kind == "database":
        data = vault.read("database/creds/readonly", token=auth["client_token"])["data"]
    else:
        body = vault.read(
            f"secret/data/{workload.kv_path_of(identity)}", token=auth["client_token"]
        )
        data = body["data"]["data"]
    kube.create(
        ns_path(NAMESPACE, "secrets"),
        {
            "metadata": {"name": name, "labels": {FLOOR_LABEL: "true"}},
            "type": "Opaque",
            "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in data.items()},
        },
    )
    return time.monotonic() - started, str(auth["accessor"])


def run(
    kube: Kube,
    vault: Vault,
    workload: Workload,
    identities: Sequence[Identity],
    *,
    label: str,
    threads: int = 16,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    names = [f"floor-{label}-{i:05d}" for i in range(len(identities))]
    latencies: list[float] = []
    accessors: list[str] = []
    errors = 0
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        futures = [
            pool.submit(_one, kube, vault, workload, n, ident)
            for n, ident in zip(names, identities, strict=True)
        ]
        last = started
        for done, future in enumerate(futures, 1):
            try:
                seconds, accessor = future.result()
            except Exception as exc:  # a failed item is counted, the run goes on
                errors += 1
                if errors <= 3:
                    progress(f"floor: item failed: {exc}")
                continue
            latencies.append(seconds)
            accessors.append(accessor)
            now = time.monotonic()
            if now - last >= 5:
                last = now
                progress(f"floor {label}: {done}/{len(names)} ({done / (now - started):.1f}/s)")
    wall = time.monotonic() - started
    result = {
        "tasks": len(names),
        "threads": threads,
        "errors": errors,
        "seconds": wall,
        "throughput": len(latencies) / wall if wall else None,
        "latency": summary(latencies),
    }
    progress(
        f"floor {label}: {len(latencies)} in {wall:.1f}s = {result['throughput']:.1f}/s "
        f"(errors {errors})"
    )
    parallel(vault.revoke_accessor, accessors)
    kube.call(
        "DELETE",
        ns_path(NAMESPACE, "secrets"),
        params={"labelSelector": f"{FLOOR_LABEL}=true"},
    )
    return result
