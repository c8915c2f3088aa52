"""The scale scenario of issue #22: N active tasks in one replica (20,000 on demand).

``make bench ARGS="--scenarios scale"`` (``--scale-size``, default 20,000; a reduced
size runs in ``make test``: tests/e2e/test_bench_scale.py). Every task runs as the
one shared ServiceAccount on one shared KV secret with a 1 h refresh, the cheapest
credential there is (one backend read for all of them), so the figures are the
operator's and the API server's, not the backend's:

1. **fill**: N AgentTasks created (16 threads, or ``--fill-rate``); time until every
   generated Secret exists, then until every task says Active; API server requests per
   task (``apiserver_request_total``, the benchmark's creates removed).
2. **active**: the operator's RSS with N active (and, with ``--tracemalloc``/
   ``--heap-types``, a heap snapshot ``scale-<N>``: per-task bytes and object counts).
3. **restart**: SIGTERM, a new process, time until ready (``scenarios.restart``: health,
   idle CPU, no log), tasks re-issued (their status credentials changed), the new
   process's backend calls (what reached the backend: ``issue`` must stay 0); its RSS
   holding N once idle, and at rest ``--scale-rest`` seconds later (65: past the next
   sweep, which returns the freed heap to the OS).
4. **end**: every task deleted (the operator revokes, then they go); RSS sampled until
   it is under 1.2x the run's idle RSS, at most ``--scale-settle`` seconds (120).

Nothing is asserted: figures are printed and written to the results JSON.
"""

from __future__ import annotations

import time
from typing import Any

from agentcred.models.api_names import GROUP, VERSION
from bench import scenarios
from bench.kubeapi import ns_path
from bench.scenarios import Ctx, _api_counts, _create_all, _delta, _per_task, settle
from bench.workload import (
    BACKEND,
    NAMESPACE,
    ROLE,
    RUN_LABEL,
    SCENARIO_LABEL,
    SHARED_KV,
    SHARED_SA,
    Identity,
    parallel,
    task_path,
    tasks_path,
)

CREDENTIAL = "scale-kv"
DEFAULT_SIZE = 20_000
MAX_SIZE = 50_000
IDLE_FACTOR = 1.2


def _credential(ctx: Ctx) -> None:
    """One AgentCredential on the shared KV secret, refreshed hourly. The refresh grid's
    phase comes from who reads what where (namespace, ServiceAccount, the merged backend
    block with the testbed's OpenBao address and port), not from the run, so a grid point
    can fall inside a run: the restart counts the tasks refreshed because they came due
    apart from those it re-issued."""
    path = ns_path(NAMESPACE, "agentcredentials", GROUP, VERSION)
    ctx.kube.apply(
        f"{path}/{CREDENTIAL}",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentCredential",
            "metadata": {"name": CREDENTIAL, "labels": {RUN_LABEL: ctx.workload.run_id}},
            "spec": {
                "backendRef": {"name": BACKEND},
                "vault": {"role": ROLE, "kv": {"path": SHARED_KV}},
                "ttl": "1h",
                "refreshInterval": "1h",
            },
        },
    )
    ctx.workload.wait_credentials_ready([CREDENTIAL])


def _wait_active(
    ctx: Ctx, scenario: str, size: int, timeout: float
) -> tuple[dict[str, int], float]:
    """Poll the tasks' phases (one paged list every 5 s) until all N are Active."""
    started = time.monotonic()
    phases: dict[str, int] = {}
    while time.monotonic() - started < timeout:
        phases = ctx.workload.phases(scenario)
        if phases.get("Active", 0) >= size:
            break
        time.sleep(5)
    return phases, time.monotonic() - started


def _delete_all(ctx: Ctx, scenario: str, names: list[str], timeout: float) -> float:
    """Delete every task; seconds until none is left (a metadata-only list every 3 s:
    polling 20,000 whole bodies would load the API server the operator is measured on)."""
    started = time.monotonic()
    parallel(lambda n: ctx.kube.delete(task_path(n)), names)
    selector = f"{SCENARIO_LABEL}={scenario}"
    while time.monotonic() - started < timeout:
        left = sum(
            1 for _ in ctx.kube.list_items(tasks_path(), selector=selector, metadata_only=True)
        )
        if not left:
            break
        time.sleep(3)
    return time.monotonic() - started


def _rss_back(ctx: Ctx, idle_mib: float, seconds: float) -> tuple[float | None, float | None]:
    """Seconds until RSS < 1.2x idle (None: not within ``seconds``), and the last RSS."""
    op = ctx.op()
    started = time.monotonic()
    rss = op.rss()
    while time.monotonic() - started < seconds:
        rss = op.rss()
        if rss is not None and rss < IDLE_FACTOR * idle_mib:
            return time.monotonic() - started, rss
        time.sleep(1)
    return None, rss


def run(
    ctx: Ctx,
    size: int,
    idle_mib: float,
    *,
    settle_seconds: float = 120.0,
    rest_seconds: float = 65.0,
) -> dict[str, Any]:
    scenario = f"scale-{size}"
    _credential(ctx)
    names = [f"{scenario}-{i:05d}" for i in range(size)]
    identities = [Identity(SHARED_SA, CREDENTIAL)] * size
    settle(ctx)
    op = ctx.op()
    ctx.sampler.phase = scenario
    rss_before, cpu_before = op.rss() or 0.0, op.cpu() or 0.0
    calls_before = op.backend_calls()
    api_before = _api_counts(ctx)
    log_start = op.log_size()
    timeout = ctx.burst_timeout or max(600.0, 0.2 * size)
    ctx.progress(f"{scenario}: creating {size:,} tasks on one shared KV secret")
    started = time.monotonic()
    stop = scenarios._start_ticker(
        ctx,
        lambda: (
            f"{scenario}: {ctx.recorder.count_added(names)}/{size} Secrets after "
            f"{time.monotonic() - started:.0f}s"
        ),
    )
    try:
        created, errors = _create_all(ctx, names, identities, scenario)
        create_seconds = time.monotonic() - started
        wanted = [n for n in names if n in created]
        ctx.recorder.wait(lambda: all(n in ctx.recorder.added for n in wanted), timeout)
        secrets_seconds = time.monotonic() - started
        phases, _ = _wait_active(ctx, scenario, len(wanted), timeout)
        active_seconds = time.monotonic() - started
    finally:
        stop.set()
    fill: dict[str, Any] = {
        "tasks": size,
        "create_errors": errors,
        "create_seconds": create_seconds,
        "secrets": ctx.recorder.count_added(wanted),
        "secrets_seconds": secrets_seconds,
        "active_seconds": active_seconds,
        "phases": phases,
        "cpu_ms_per_task": 1000 * ((op.cpu() or 0.0) - cpu_before) / max(len(wanted), 1),
        "rss_peak_mib": ctx.sampler.peak_rss(started),
        "backend_calls": _delta(calls_before, op.backend_calls()),
        "api_requests_per_task": _per_task(
            _delta(api_before, _api_counts(ctx)), len(wanted), len(created)
        ),
        "operator_problems": op.log_problems(log_start),
    }
    ctx.progress(
        f"{scenario}: {fill['secrets']:,}/{size:,} Secrets after {secrets_seconds:.1f}s, "
        f"{phases.get('Active', 0):,} Active after {active_seconds:.1f}s; API requests per "
        f"task {fill['api_requests_per_task']}; backend calls {fill['backend_calls']}"
    )
    settle(ctx)
    rss_active = op.rss()
    ctx.progress(f"{scenario}: RSS with {size:,} active: {rss_active or 0:.0f} MiB")
    scenarios.tracemalloc_snapshot(ctx, scenario)
    api_before = _api_counts(ctx)
    restart = scenarios.restart(ctx, scenario)
    restart_requests = _per_task(_delta(api_before, _api_counts(ctx)), size, 0)
    issue_calls = restart["backend_calls_after_grace"].get("issue", 0)
    settle(ctx)
    rss_settled = ctx.op().rss()
    time.sleep(rest_seconds)  # at rest: past the next sweep, which trims the freed heap
    rss_restarted = ctx.op().rss()
    ctx.progress(
        f"{scenario}: restarted operator holding {size:,}: RSS {rss_restarted or 0:.0f} MiB, "
        f"{restart['reissued_tasks']} re-issued, backend issue calls {issue_calls:g}, API "
        f"requests per task {restart_requests}"
    )
    ctx.sampler.phase = f"end-{scenario}"
    delete_seconds = _delete_all(ctx, scenario, names, timeout=max(300.0, size / 5))
    back_seconds, rss_end = _rss_back(ctx, idle_mib, settle_seconds)
    ctx.progress(
        f"{scenario}: {size:,} tasks deleted in {delete_seconds:.1f}s; RSS "
        f"{rss_end or 0:.0f} MiB (idle {idle_mib:.0f}), under {IDLE_FACTOR}x idle "
        + (f"after {back_seconds:.1f}s" if back_seconds is not None else "NOT within the wait")
    )
    per_task = None
    if rss_restarted is not None:
        per_task = (rss_restarted - idle_mib) * 2**20 / max(size, 1)
    return {
        "scenario": scenario,
        "tasks": size,
        "idle_rss_mib": idle_mib,
        "rss_before_mib": rss_before,
        "fill": fill,
        "rss_active_mib": rss_active,
        "restart": restart,
        "restart_issue_calls": issue_calls,
        "restart_api_requests_per_task": restart_requests,
        "rss_restarted_settled_mib": rss_settled,
        "rss_restarted_mib": rss_restarted,
        "rest_seconds": rest_seconds,
        "rss_bytes_per_task_at_rest": per_task,
        "delete_seconds": delete_seconds,
        "rss_after_end_mib": rss_end,
        "rss_back_under_seconds": back_seconds,
        "rss_back_wait_seconds": settle_seconds,
        "rss_end_ratio": (rss_end / idle_mib) if rss_end and idle_mib else None,
    }


def teardown(ctx: Ctx) -> None:
    """The scenario's credential (the tasks went with the run's or the namespace)."""
    path = ns_path(NAMESPACE, "agentcredentials", GROUP, VERSION)
    ctx.kube.delete(f"{path}/{CREDENTIAL}")
