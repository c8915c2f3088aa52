"""The scenarios of issue #10: burst, paced, completion, restart, shared (and idle/RSS).

Each returns a plain dict for the JSON results. Every wait is bounded; nothing is
asserted (a benchmark reports, tests decide). Latency = when the generated Secret's
ADDED (or DELETED) event arrived - when our create (or completion patch) call returned.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import operator_proc, profiling
from bench.kubeapi import Kube, parse_time
from bench.operator_proc import Operator, Sampler
from bench.recorder import SecretRecorder, summary
from bench.vaultapi import Vault
from bench.workload import THREADS, Identity, Workload, parallel

Progress = Callable[[str], None]


@dataclass
class Ctx:
    kube: Kube
    vault: Vault
    workload: Workload
    recorder: SecretRecorder
    sampler: Sampler
    env: dict[str, str]
    out: Path  # this run's folder (operator logs, profiles)
    progress: Progress
    operator: Operator | None = None
    tracemalloc_frames: int = -1  # -1: plain operator; 0: histograms only; N: tracemalloc
    fill_rate: float = 0.0  # >0: bursts are created at this rate (profiling runs)
    burst_timeout: float = 0.0  # 0: max(300 s, 0.4 s per task)
    operator_env: dict[str, str] = field(default_factory=dict)  # --operator-env
    py_spy: bool = False
    ready_pattern: str = ""
    restart_grace: float = 10.0  # restart: seconds after ready in which a re-issue would show
    restarts: int = 0
    profiles: list[str] = field(default_factory=list)

    def start_operator(self) -> Operator:
        log = self.out / f"operator-{self.restarts}.log"
        self.restarts += 1
        op = operator_proc.start(
            self.env,
            log,
            tracemalloc_frames=self.tracemalloc_frames,
            extra_env=self.operator_env,
        )
        self.operator = op
        self.sampler.operator = op
        return op

    def op(self) -> Operator:
        assert self.operator is not None
        return self.operator


def _rate(count: int, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def settle(ctx: Ctx, seconds: float = 3.0, threshold: float = 0.05, timeout: float = 120) -> float:
    """Wait until the operator's CPU use stays under ``threshold`` cores for ``seconds``."""
    op = ctx.op()
    started = time.monotonic()
    window: list[tuple[float, float]] = []
    while time.monotonic() - started < timeout:
        cpu = op.cpu()
        now = time.monotonic()
        if cpu is None:
            return now - started
        window.append((now, cpu))
        window = [(t, c) for t, c in window if now - t <= seconds]
        if now - window[0][0] >= seconds * 0.9:
            used = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
            if used < threshold:
                break
        time.sleep(0.25)
    return time.monotonic() - started


def _ticker(ctx: Ctx, what: Callable[[], str], stop: threading.Event, every: float = 5) -> None:
    while not stop.wait(every):
        op = ctx.operator
        rss = op.rss() if op else None
        ctx.progress(f"{what()}, operator RSS {rss or 0:.0f} MiB")


def _start_ticker(ctx: Ctx, what: Callable[[], str]) -> threading.Event:
    """Report ``what()`` every 5 s in a daemon thread until the returned event is set."""
    stop = threading.Event()
    threading.Thread(target=_ticker, args=(ctx, what, stop), daemon=True).start()
    return stop


def _create_all(
    ctx: Ctx, names: Sequence[str], identities: Sequence[Identity], scenario: str
) -> tuple[dict[str, float], int]:
    """Create every task as fast as 16 threads can (or at ``ctx.fill_rate`` per second)."""
    created: dict[str, float] = {}
    errors = 0
    index = {name: i for i, name in enumerate(names)}
    started = time.monotonic()

    def one(pair: tuple[str, Identity]) -> None:
        nonlocal errors
        if ctx.fill_rate > 0:
            delay = started + index[pair[0]] / ctx.fill_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        try:
            ctx.workload.create_task(pair[0], pair[1], scenario)
        except Exception as exc:  # counted and shown; the run goes on
            errors += 1
            if errors <= 3:
                ctx.progress(f"create {pair[0]} failed: {exc}")
            return
        created[pair[0]] = time.monotonic()

    parallel(one, list(zip(names, identities, strict=True)))
    return created, errors


def _capture_cpu(ctx: Ctx, label: str, seconds: float) -> subprocess.Popen[bytes] | None:
    """Start py-spy on the operator for at most ``seconds`` (``--py-spy`` runs only)."""
    if not ctx.py_spy:
        return None
    target = ctx.out / f"py-spy-{label}.txt"
    ctx.profiles.append(str(target))
    return profiling.start_py_spy(ctx.op().pid, target, seconds)


def stop_py_spy(ctx: Ctx, proc: subprocess.Popen[bytes] | None) -> None:
    profiling.stop_py_spy(proc)


# -- burst ----------------------------------------------------------------------------------


PIDS = Path(__file__).resolve().parents[1] / ".testbed" / "pids"


def servers_cpu() -> dict[str, float]:
    """CPU seconds so far of each testbed server (by its recorded PID) and of the
    benchmark itself (its client threads create the tasks and watch the Secrets)."""
    seconds: dict[str, float] = {"bench": time.process_time()}
    for pidfile in sorted(PIDS.glob("*.pid")):
        try:
            used = operator_proc.cpu_seconds(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
        if used is not None:
            seconds[pidfile.stem] = used
    return seconds


def burst(
    ctx: Ctx,
    size: int,
    *,
    scenario: str | None = None,
    shared: bool = False,
    identities: Sequence[Identity] | None = None,
) -> dict[str, Any]:
    scenario = scenario or f"burst-{size}"
    if identities is None:
        identities = ctx.workload.shared(size) if shared else ctx.workload.identities(size)
    names = [f"{scenario}-{i:05d}" for i in range(size)]
    settle(ctx)
    op = ctx.op()
    ctx.sampler.phase = scenario
    rss_before, cpu_before = op.rss() or 0.0, op.cpu() or 0.0
    servers_before = servers_cpu()
    calls_before = op.backend_calls()
    api_before = _api_counts(ctx)
    log_start = op.log_size()
    resynced = ctx.recorder.resynced
    timeout = ctx.burst_timeout or max(300.0, 0.4 * size)
    spy = _capture_cpu(ctx, scenario, min(timeout, max(30.0, size / 20)))
    started = time.monotonic()
    stop = _start_ticker(
        ctx,
        lambda: (
            f"{scenario}: {ctx.recorder.count_added(names)}/{size} Secrets after "
            f"{time.monotonic() - started:.0f}s"
        ),
    )
    try:
        created, errors = _create_all(ctx, names, identities, scenario)
        created_at = time.monotonic()
        ctx.progress(f"{scenario}: {len(created)} tasks created in {created_at - started:.1f}s")
        wanted = [n for n in names if n in created]
        done = ctx.recorder.wait(lambda: all(n in ctx.recorder.added for n in wanted), timeout)
    finally:
        stop.set()
    finished = time.monotonic()
    cpu_after, rss_after = op.cpu() or 0.0, op.rss() or 0.0
    servers = _delta(servers_before, servers_cpu())
    stop_py_spy(ctx, spy)
    latencies = [ctx.recorder.added[n] - created[n] for n in wanted if n in ctx.recorder.added]
    last = max((ctx.recorder.added[n] for n in wanted if n in ctx.recorder.added), default=finished)
    reached = len(latencies)
    calls_after = op.backend_calls()
    result: dict[str, Any] = {
        "scenario": scenario,
        "tasks": size,
        "create_errors": errors,
        "create_seconds": created_at - started,
        "secrets": reached,
        "complete": done,
        "seconds": last - started,
        "throughput": _rate(reached, last - started),
        "latency": summary(latencies),
        "operator_cpu_seconds": cpu_after - cpu_before,
        "operator_cpu_utilisation": (cpu_after - cpu_before) / max(finished - started, 1e-9),
        # cores each testbed server used meanwhile: where the machine's two cores went
        "servers_cpu_utilisation": {
            name: seconds / max(finished - started, 1e-9) for name, seconds in servers.items()
        },
        "cpu_ms_per_task": 1000 * (cpu_after - cpu_before) / max(reached, 1),
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_peak_mib": ctx.sampler.peak_rss(started),
        "backend_calls": _delta(calls_before, calls_after),
        "phases": ctx.workload.phases(scenario),
        "operator_problems": op.log_problems(log_start),
        "timeout_seconds": timeout,
        "watch_events_missed": ctx.recorder.resynced - resynced,
        "api_requests_per_task": _per_task(_delta(api_before, _api_counts(ctx)), reached, size),
    }
    ctx.progress(f"{scenario}: operator warnings/errors {result['operator_problems']}")
    ctx.progress(f"{scenario}: API server requests per task {result['api_requests_per_task']}")
    cores = {"operator": result["operator_cpu_utilisation"], **result["servers_cpu_utilisation"]}
    ctx.progress(
        f"{scenario}: cores busy "
        + ", ".join(f"{name} {used:.2f}" for name, used in cores.items() if used >= 0.01)
        + f" (total {sum(cores.values()):.2f})"
    )
    ctx.progress(
        f"{scenario}: {reached}/{size} Secrets in {result['seconds']:.1f}s = "
        f"{result['throughput'] or 0:.1f}/s, p50 {_s(result['latency']['p50'])} "
        f"p99 {_s(result['latency']['p99'])}, {result['cpu_ms_per_task']:.1f} CPU-ms/task, "
        f"RSS {rss_after:.0f} MiB"
    )
    return result


def _api_counts(ctx: Ctx) -> dict[str, float]:
    try:
        return ctx.kube.request_counts()
    except Exception:  # the API server's metrics are a bonus
        return {}


def _per_task(
    delta: dict[str, float], tasks: int, created: int, own: dict[str, float] | None = None
) -> dict[str, float]:
    """API requests per task, the benchmark's own share removed (one create per task, and
    ``own``: its completion PATCHes, its DELETEs, its polling LISTs; its watch and the few
    other lists it makes are negligible at these sizes)."""
    delta = dict(delta)
    delta["POST agenttasks"] = delta.get("POST agenttasks", 0) - created
    for key, mine in (own or {}).items():
        delta[key] = delta.get(key, 0) - mine
    rows = {k: round(v / max(tasks, 1), 2) for k, v in delta.items() if v / max(tasks, 1) >= 0.05}
    rows["total"] = round(sum(v for v in delta.values() if v > 0) / max(tasks, 1), 1)
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]))


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))}


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


# -- paced ----------------------------------------------------------------------------------


def paced(ctx: Ctx, rate: float, seconds: float) -> dict[str, Any]:
    scenario = "paced"
    count = int(rate * seconds)
    identities = ctx.workload.identities(count)
    names = [f"paced-{i:05d}" for i in range(count)]
    settle(ctx)
    op = ctx.op()
    ctx.sampler.phase = scenario
    cpu_before = op.cpu() or 0.0
    created: dict[str, float] = {}
    errors = 0
    started = time.monotonic()
    lag: list[float] = []

    def one(i: int) -> None:
        nonlocal errors
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        lag.append(max(0.0, time.monotonic() - due))
        try:
            ctx.workload.create_task(names[i], identities[i], scenario)
        except Exception as exc:
            errors += 1
            if errors <= 3:
                ctx.progress(f"create {names[i]} failed: {exc}")
            return
        created[names[i]] = time.monotonic()

    stop = _start_ticker(
        ctx,
        lambda: (
            f"paced {rate:g}/s: {len(created)} created, {ctx.recorder.count_added(names)} Secrets"
        ),
    )
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(count)))
        ctx.recorder.wait(lambda: all(n in ctx.recorder.added for n in created), 120)
    finally:
        stop.set()
    latencies = [ctx.recorder.added[n] - t for n, t in created.items() if n in ctx.recorder.added]
    wall = max(created.values(), default=started) - started
    result: dict[str, Any] = {
        "scenario": scenario,
        "rate": rate,
        "seconds": seconds,
        "tasks": count,
        "achieved_rate": _rate(len(created), wall),
        "create_errors": errors,
        "secrets": len(latencies),
        "latency": summary(latencies),
        "submit_lag_p99": summary(lag)["p99"],
        "cpu_ms_per_task": 1000 * ((op.cpu() or 0.0) - cpu_before) / max(len(created), 1),
        "rss_after_mib": op.rss(),
    }
    ctx.progress(
        f"paced {rate:g}/s for {seconds:g}s: p50 {_s(result['latency']['p50'])} "
        f"p99 {_s(result['latency']['p99'])} ({len(latencies)}/{count} Secrets)"
    )
    return result


# -- completion -----------------------------------------------------------------------------


def completion(ctx: Ctx, scenario: str, names: Sequence[str]) -> dict[str, Any]:
    wk = ctx.workload
    settle(ctx)
    op = ctx.op()
    ctx.sampler.phase = f"complete-{scenario}"
    tokens_before = ctx.vault.token_count()
    leases_before = ctx.vault.lease_count("database/creds/readonly") if wk.kind == "database" else 0
    sessions_before = wk.session_count()
    calls_before = op.backend_calls()
    cpu_before = op.cpu() or 0.0
    log_start = op.log_size()
    resynced = ctx.recorder.resynced
    api_before = _api_counts(ctx)
    patched: dict[str, float] = {}
    ctx.recorder.resync()  # what exists now, whatever the watch said
    live = [n for n in names if n in ctx.recorder.added and n not in ctx.recorder.deleted]
    spy = _capture_cpu(ctx, f"complete-{scenario}", max(20.0, len(live) / 50))

    errors = 0

    def one(name: str) -> None:
        nonlocal errors
        try:
            wk.complete_task(name)
        except Exception as exc:  # counted and shown; the others go on
            errors += 1
            if errors <= 3:
                ctx.progress(f"completing {name} failed: {exc}")
            return
        patched[name] = time.monotonic()

    started = time.monotonic()
    stop = _start_ticker(
        ctx,
        lambda: (
            f"complete {scenario}: {ctx.recorder.count_deleted(live)}/{len(live)} Secrets deleted"
        ),
    )
    try:
        parallel(one, live)
        done = ctx.recorder.wait(
            lambda: all(n in ctx.recorder.deleted for n in patched),
            ctx.burst_timeout or max(300.0, 0.4 * len(live)),
        )
    finally:
        stop.set()
    stop_py_spy(ctx, spy)
    latencies = [
        ctx.recorder.deleted[n] - t for n, t in patched.items() if n in ctx.recorder.deleted
    ]
    last = max(
        (ctx.recorder.deleted[n] for n in live if n in ctx.recorder.deleted), default=started
    )
    # Sessions are dropped after the Secret is deleted: give the operator a moment.
    settle(ctx, timeout=60)
    result: dict[str, Any] = {
        "scenario": f"complete-{scenario}",
        "tasks": len(live),
        "complete": done,
        "seconds": last - started,
        "throughput": _rate(len(latencies), last - started),
        "latency": summary(latencies),
        "cpu_ms_per_task": 1000 * ((op.cpu() or 0.0) - cpu_before) / max(len(latencies), 1),
        "vault_tokens_before": tokens_before,
        "vault_tokens_after": ctx.vault.token_count(),
        "db_leases_before": leases_before,
        "db_leases_after": (
            ctx.vault.lease_count("database/creds/readonly") if wk.kind == "database" else 0
        ),
        "session_records_before": sessions_before,
        "session_records_after": wk.session_count(),
        "backend_calls": _delta(calls_before, op.backend_calls()),
        "phases": wk.phases(scenario),
        "operator_problems": op.log_problems(log_start),
        "watch_events_missed": ctx.recorder.resynced - resynced,
        "patch_errors": errors,
    }
    # Completion -> gone: the requests until the completed tasks settled, then their
    # deletion (what the DELETED events cost), the benchmark's own PATCH, DELETE and
    # polling LISTs removed.
    ctx.progress(f"complete {scenario}: deleting the {len(live)} completed tasks")
    deleted_in = wk.delete_tasks(live, timeout=max(180.0, len(live) / 5))
    settle(ctx, timeout=60)
    delta = _delta(api_before, _api_counts(ctx))
    own = {
        "PATCH agenttasks": float(len(patched)),
        "DELETE agenttasks": float(len(live)),
        "LIST agenttasks": delta.get("LIST agenttasks", 0.0),  # the operator lists at start only
    }
    result["deleted_seconds"] = deleted_in
    result["api_requests_per_task"] = _per_task(delta, len(live), 0, own)
    ctx.progress(
        f"complete {scenario}: API server requests per task, completion -> gone "
        f"{result['api_requests_per_task']}"
    )
    ctx.progress(
        f"complete {scenario}: {len(latencies)}/{len(live)} Secrets deleted, "
        f"p50 {_s(result['latency']['p50'])} p99 {_s(result['latency']['p99'])}; Vault tokens "
        f"{tokens_before} -> {result['vault_tokens_after']}, lease records "
        f"{sessions_before} -> {result['session_records_after']}"
    )
    return result


# -- restart --------------------------------------------------------------------------------


Fingerprints = dict[str, tuple[Any, ...]]


def _status_fingerprints(
    wk: Workload, scenario: str
) -> tuple[Fingerprints, dict[str, datetime.datetime]]:
    """Per task, from one listing: each credential's (name, issuedAt, leaseId, reissues),
    and the earliest renewAt of its credentials (tasks with one)."""
    prints: Fingerprints = {}
    due_at: dict[str, datetime.datetime] = {}
    for task in wk.tasks(scenario):
        name = task["metadata"]["name"]
        creds = (task.get("status") or {}).get("credentials") or []
        prints[name] = tuple(
            (c.get("name"), c.get("issuedAt"), c.get("leaseId"), c.get("reissues")) for c in creds
        )
        moments = [m for c in creds if (m := parse_time(c.get("renewAt"))) is not None]
        if moments:
            due_at[name] = min(moments)
    return prints, due_at


def redone_by_restart(
    before: Fingerprints,
    after: Fingerprints,
    due_at: dict[str, datetime.datetime],
    looked_at: datetime.datetime,
) -> tuple[int, int]:
    """(tasks re-issued by the restart, tasks refreshed because they were due): a task
    whose credentials changed counts as due when its earliest renewAt (as it was before
    the restart) had come by ``looked_at``. A shared static secret's refresh grid point
    can fall inside any run (its phase comes from the secret, not from the run), and a
    refresh at renewAt is the schedule working, not the restart redoing work."""
    changed = [name for name, value in before.items() if after.get(name) != value]
    due = sum(1 for name in changed if name in due_at and due_at[name] <= looked_at)
    return len(changed) - due, due


def restart(ctx: Ctx, scenario: str, timeout: float = 600) -> dict[str, Any]:
    """SIGTERM the operator with the scenario's tasks active; start a new one; time readiness.

    Ready is the first of: a log line matching ``--ready-log`` (the operator saying every
    task's schedule is loaded), else "quiet": health endpoint answering, CPU under 0.05
    cores and no log growth for 3 s. Both are reported when seen."""
    wk = ctx.workload
    settle(ctx)
    before, due_at = _status_fingerprints(wk, scenario)
    modified_before = ctx.recorder.modified
    added_before, deleted_before = len(ctx.recorder.added), len(ctx.recorder.deleted)
    old = ctx.op()
    stop_started = time.monotonic()
    old.stop()
    stop_seconds = time.monotonic() - stop_started
    ctx.sampler.phase = f"restart-{scenario}"
    op = ctx.start_operator()
    spy = _capture_cpu(ctx, f"restart-{scenario}", 60)
    pattern = re.compile(ctx.ready_pattern) if ctx.ready_pattern else None
    t_health = t_log = t_quiet = t_scheduled = None
    window: list[tuple[float, float, int]] = []
    offset = 0
    while time.monotonic() - op.started_at < timeout and op.alive():
        now = time.monotonic()
        if t_health is None and op.healthy():
            t_health = now - op.started_at
        if t_health is not None and t_scheduled is None:  # every task back in the schedule
            scheduled = op.gauge("agentcred_scheduled_items")
            if scheduled is not None and scheduled >= len(before):
                t_scheduled = now - op.started_at
        if pattern is not None and t_log is None:
            with op.log_path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            if pattern.search(chunk.decode(errors="replace")):
                t_log = now - op.started_at
        cpu = op.cpu() or 0.0
        window.append((now, cpu, op.log_size()))
        window = [w for w in window if now - w[0] <= 3.0]
        if t_health is not None and t_quiet is None and now - window[0][0] >= 2.7:
            used = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
            if used < 0.05 and window[-1][2] == window[0][2]:
                t_quiet = window[0][0] - op.started_at
        if t_quiet is not None and (pattern is None or t_log is not None):
            break
        time.sleep(0.2)
    stop_py_spy(ctx, spy)
    calls_at_ready = op.backend_calls()
    time.sleep(ctx.restart_grace)  # anything a restart would still redo shows up meanwhile
    after, _ = _status_fingerprints(wk, scenario)
    changed, due = redone_by_restart(before, after, due_at, datetime.datetime.now(datetime.UTC))
    logged = op.log_summary(0, top=12)
    ready = t_log if t_log is not None else t_quiet
    result = {
        "scenario": f"restart-{scenario}",
        "tasks": len(before),
        "stop_seconds": stop_seconds,
        "health_seconds": t_health,
        "ready_log_seconds": t_log,
        "quiet_seconds": t_quiet,
        "scheduled_seconds": t_scheduled,  # agentcred_scheduled_items reached the task count
        "ready_seconds": ready,
        "ready_definition": "log line"
        if t_log is not None
        else "quiet (health + idle CPU + no log)",
        "reissued_tasks": changed,
        "refreshed_when_due": due,  # renewAt came during the restart: not the restart's doing
        "secrets_added": len(ctx.recorder.added) - added_before,
        "secrets_deleted": len(ctx.recorder.deleted) - deleted_before,
        "secrets_modified": ctx.recorder.modified - modified_before,
        "backend_calls_at_ready": calls_at_ready,
        "backend_calls_after_grace": op.backend_calls(),
        "rss_after_mib": op.rss(),
        # What the new process logged (audit lines by action): a re-issue says why here.
        "log": logged,
    }
    ctx.progress(
        f"restart with {len(before)} tasks: stopped in {stop_seconds:.1f}s, healthy after "
        f"{_s(t_health)}, every task scheduled after {_s(t_scheduled)}, ready "
        f"({result['ready_definition']}) after {_s(ready)}; "
        f"{changed} tasks re-issued ({due} refreshed as they came due), backend calls "
        f"{sum(calls_at_ready.values()):g}"
    )
    if changed or due:
        top = logged.get("top", [])[:6]
        ctx.progress(f"restart: what the new process logged most often: {top}")
    return result


# -- shared ---------------------------------------------------------------------------------


def shared(ctx: Ctx, size: int, refresh_seconds: float, intervals: int) -> dict[str, Any]:
    """N tasks on one KV secret (one identity): backend reads per refresh interval."""
    scenario = f"shared-{size}"
    created = burst(ctx, size, scenario=scenario, shared=True)
    op = ctx.op()
    calls_before, hits_before = op.backend_calls(), op.backend_cache_hits()
    cpu_before = op.cpu() or 0.0
    modified_before = ctx.recorder.modified
    ctx.progress(f"shared: observing {intervals} refresh intervals of {refresh_seconds:g}s")
    time.sleep(refresh_seconds * intervals)
    calls = _delta(calls_before, op.backend_calls())  # what reached the backend
    hits = _delta(hits_before, op.backend_cache_hits())  # what the shared read answered
    reads = calls.get("issue", 0)
    result = {
        "scenario": scenario,
        "tasks": size,
        "burst": created,
        "refresh_seconds": refresh_seconds,
        "observed_seconds": refresh_seconds * intervals,
        "backend_calls": calls,
        "backend_cache_hits": hits,
        "reads_per_refresh": reads / intervals,
        "hits_per_refresh": hits.get("issue", 0) / intervals,
        "logins_per_refresh": calls.get("login", 0) / intervals,
        "secret_writes": ctx.recorder.modified - modified_before,
        "cpu_seconds_per_refresh": ((op.cpu() or 0.0) - cpu_before) / intervals,
    }
    ctx.progress(
        f"shared {size}: {result['reads_per_refresh']:.1f} backend reads per refresh "
        f"(calls that reached the backend: {calls}), {result['hits_per_refresh']:.1f} served "
        f"by the shared read, {result['secret_writes']} Secret writes"
    )
    return result


# -- idle and profiling ---------------------------------------------------------------------


def idle(ctx: Ctx, seconds: float = 10) -> dict[str, Any]:
    settle(ctx)
    op = ctx.op()
    ctx.sampler.phase = "idle"
    time.sleep(seconds)
    return {"rss_mib": op.rss(), "cpu_seconds": op.cpu(), "active": ctx.recorder.active()}


def tracemalloc_snapshot(ctx: Ctx, label: str) -> None:
    if ctx.tracemalloc_frames >= 0 and ctx.operator is not None:
        ctx.progress(f"tracemalloc snapshot '{label}' ...")
        path = ctx.operator.snapshot(label)
        if path is not None:
            ctx.profiles.append(str(path))
