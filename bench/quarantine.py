"""The quarantine scenario of issue #20: N active tasks, each holding a dynamic PostgreSQL
lease from Vault, matched by one CredentialQuarantine; how long until every Secret is
deleted and every lease is revoked, checked at Vault.

Every task runs as its own ServiceAccount with one AgentCredential on the testbed's
dynamic database role (``database/creds/readonly``), so each holds its own Vault lease
and its own session. Once all are Active, one quarantine selects them by label.
Latencies are counted from the quarantine's create returning: per Secret, its DELETED
event (the recorder's watch); per lease, the moment its id left Vault's lease list
(``sys/leases/lookup``, polled every ``POLL`` s, so resolution is that). Target: p99 of
both <= 10 s for 1,000 tasks. The quarantine, the tasks and the credential are removed on
the way out (the tasks revoke nothing more: the quarantine ended them).
"""

from __future__ import annotations

import time
from typing import Any

from agentcred.models.api_names import GROUP, VERSION
from bench.kubeapi import ns_path
from bench.recorder import summary
from bench.scenarios import Ctx, _create_all, settle
from bench.workload import BACKEND, NAMESPACE, ROLE, RUN_LABEL, SCENARIO_LABEL, Identity

CREDENTIAL = "quarantine-db"
DB_PATH = "database/creds/readonly"
POLL = 0.2
TARGET_P99 = 10.0


def _quarantines_path(name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/credentialquarantines"
    return f"{base}/{name}" if name else base


def _credential(ctx: Ctx) -> None:
    path = ns_path(NAMESPACE, "agentcredentials", GROUP, VERSION)
    ctx.kube.apply(
        f"{path}/{CREDENTIAL}",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentCredential",
            "metadata": {"name": CREDENTIAL, "labels": {RUN_LABEL: ctx.workload.run_id}},
            "spec": {
                "backendRef": {"name": BACKEND},
                "vault": {"role": ROLE, "dynamic": {"path": DB_PATH}},
                "ttl": "1h",
            },
        },
    )
    ctx.workload.wait_credentials_ready([CREDENTIAL])


def _lease_ids(ctx: Ctx) -> set[str]:
    return {f"{DB_PATH}/{key}" for key in ctx.vault.list_keys(f"sys/leases/lookup/{DB_PATH}/")}


def _wait_leases(ctx: Ctx, scenario: str, wanted: int, timeout: float = 60.0) -> set[str]:
    """The lease ids in the tasks' status, once every task with a Secret shows one: a
    task's Secret is written before its status records the lease, and a lease read too
    early would be left out of the measurement."""
    deadline = time.monotonic() + timeout
    while True:
        ours = {
            str(c.get("leaseId"))
            for t in ctx.workload.tasks(scenario)
            for c in (t.get("status") or {}).get("credentials") or []
            if c.get("leaseId")
        }
        if len(ours) >= wanted or time.monotonic() > deadline:
            return ours
        time.sleep(1.0)


def run(ctx: Ctx, size: int) -> dict[str, Any]:
    scenario = f"quarantine-{size}"
    _credential(ctx)
    accounts = ctx.workload.identities(size)
    identities = [Identity(a.service_account, CREDENTIAL) for a in accounts]
    names = [f"{scenario}-{i:05d}" for i in range(size)]
    ctx.progress(f"{scenario}: creating {size} tasks with a dynamic database lease each")
    created, errors = _create_all(ctx, names, identities, scenario)
    wanted = [n for n in names if n in created]
    ctx.recorder.wait(lambda: all(n in ctx.recorder.added for n in wanted), max(300.0, 0.4 * size))
    issued = [n for n in wanted if n in ctx.recorder.added]
    ours = _wait_leases(ctx, scenario, len(issued))
    settle(ctx)
    live = ours & _lease_ids(ctx)
    ctx.progress(f"{scenario}: {len(issued)} Secrets, {len(live)} leases live in Vault")
    op = ctx.op()
    cpu_before = op.cpu() or 0.0
    log_start = op.log_size()
    ctx.sampler.phase = scenario
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CredentialQuarantine",
        "metadata": {"name": scenario, "labels": {RUN_LABEL: ctx.workload.run_id}},
        "spec": {
            "reason": "bench: every task of the scenario",
            "taskSelector": {"matchLabels": {SCENARIO_LABEL: scenario}},
        },
    }
    ctx.kube.create(_quarantines_path(), body)
    started = time.monotonic()
    revoked: dict[str, float] = {}
    deadline = started + max(120.0, 0.2 * size)
    while time.monotonic() < deadline:
        now = time.monotonic()
        for lease in live - set(revoked) - _lease_ids(ctx):
            revoked[lease] = now - started
        if len(revoked) == len(live) and all(n in ctx.recorder.deleted for n in issued):
            break
        time.sleep(POLL)
    secret_latency = [
        ctx.recorder.deleted[n] - started for n in issued if n in ctx.recorder.deleted
    ]
    status = (ctx.kube.get(_quarantines_path(scenario)) or {}).get("status") or {}
    complete: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Complete"), {}
    )
    result: dict[str, Any] = {
        "scenario": scenario,
        "tasks": size,
        "create_errors": errors,
        "active_before": len(issued),
        "leases_before": len(live),
        "secrets_deleted": len(secret_latency),
        "leases_revoked": len(revoked),
        "secret_latency": summary(secret_latency),
        "revoke_latency": summary(list(revoked.values())),
        "poll_seconds": POLL,
        "quarantine_status": {k: status.get(k) for k in ("matchedTasks", "leasesRevoked")},
        "complete_message": complete.get("message"),
        "operator_cpu_seconds": (op.cpu() or 0.0) - cpu_before,
        "operator_problems": op.log_problems(log_start),
        "phases": ctx.workload.phases(scenario),
        "target_p99_seconds": TARGET_P99,
    }
    ctx.progress(
        f"{scenario}: {len(secret_latency)}/{len(issued)} Secrets deleted, p99 "
        f"{result['secret_latency']['p99']}; {len(revoked)}/{len(live)} leases revoked in "
        f"Vault, p99 {result['revoke_latency']['p99']}; operator says: {complete.get('message')}"
    )
    ctx.kube.delete(_quarantines_path(scenario))
    ctx.workload.delete_tasks(names, timeout=max(180.0, size / 5))
    return result


def teardown(ctx: Ctx) -> None:
    """The scenario's quarantines (by run label) and its credential."""
    for item in ctx.kube.list_items(_quarantines_path(), selector=RUN_LABEL):
        ctx.kube.delete(_quarantines_path(item["metadata"]["name"]))
    path = ns_path(NAMESPACE, "agentcredentials", GROUP, VERSION)
    ctx.kube.delete(f"{path}/{CREDENTIAL}")
