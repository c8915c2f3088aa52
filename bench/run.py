"""``make bench``: bring up the testbed, start the operator, run the scenarios, write results.

    make bench ARGS="--sizes 100,1000 --scenarios burst,floor,restart,completion,paced,shared"
    make bench ARGS="--scenarios fairness --fairness-flood 500"
    make bench ARGS="--scenarios quarantine"    # 1,000 leases, one quarantine (issue #20)
    make bench ARGS="--scenarios scale --scale-size 20000"   # one replica at scale (#22)

Per size (ascending): the plain-script floor on fresh identities, the burst of N tasks
on the same identities, a restart with the N tasks active, their completion, then
their deletion and the RSS once they are gone. Then the paced run, the shared
secret and fairness (bench/fairness.py: one namespace floods, another creates a task a
second; its time to Secret and its renewals). Results:
``bench/results/<date>-<time>.json`` (summaries, RSS samples),
``bench/results/latest.{json,md,png}``, and a run folder ``bench/results/<stamp>/`` with
the operator's logs and any profiles (never committed). Everything is bounded in
count and time, and torn down on the way out, Ctrl-C and SIGTERM included: the bench
namespaces, their backends, Vault role and KV secrets, and the operator process it
started (by PID).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from agentcred_testbed import stack
from agentcred_testbed.procs import StateDir
from bench import fairness, floor, report, scenarios
from bench import quarantine as quarantine_scenario
from bench import scale as scale_scenario
from bench.kubeapi import Kube
from bench.operator_proc import Sampler
from bench.recorder import SecretRecorder
from bench.scenarios import Ctx
from bench.vaultapi import Vault
from bench.workload import SHARED_CREDENTIAL, Workload

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
ALL = ("floor", "burst", "restart", "completion", "paced", "shared", "fairness", "quarantine")
ON_DEMAND = ("scale",)  # never in the default run: 20,000 tasks take half an hour
MAX_SIZE = 10_000
MAX_SAMPLES = 800


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default="100,1000", help="tasks per burst, comma-separated")
    p.add_argument("--scenarios", default=",".join(ALL), help=f"any of {','.join(ALL + ON_DEMAND)}")
    p.add_argument(
        "--mode",
        choices=("identity", "credential"),
        default="identity",
        help="per-task ServiceAccount (default) or per-task AgentCredential + KV secret",
    )
    p.add_argument(
        "--credential",
        choices=("kv", "database"),
        default="kv",
        help="KV v2 secret (default) or the dynamic PostgreSQL role",
    )
    p.add_argument("--rate", type=float, default=20.0, help="paced: tasks per second")
    p.add_argument("--duration", type=float, default=60.0, help="paced: seconds")
    p.add_argument(
        "--shared-size", type=int, default=0, help="shared: tasks (default min(1000, largest size))"
    )
    p.add_argument(
        "--shared-refresh", type=float, default=30.0, help="shared: refreshInterval seconds"
    )
    p.add_argument("--shared-intervals", type=int, default=2, help="shared: intervals observed")
    p.add_argument(
        "--fairness-flood", type=int, default=500, help="fairness: tasks one namespace creates"
    )
    p.add_argument(
        "--quarantine-size",
        type=int,
        default=1000,
        help="quarantine: active tasks (one dynamic database lease each) it ends",
    )
    p.add_argument(
        "--scale-size",
        type=int,
        default=scale_scenario.DEFAULT_SIZE,
        help="scale: active tasks in one replica (bench/scale.py)",
    )
    p.add_argument(
        "--scale-settle",
        type=float,
        default=120.0,
        help="scale: seconds to wait for RSS under 1.2x idle once the tasks are gone",
    )
    p.add_argument(
        "--scale-rest",
        type=float,
        default=65.0,
        help="scale: seconds the restarted operator rests before its RSS is taken",
    )
    p.add_argument(
        "--idle-seconds", type=float, default=10.0, help="seconds the idle RSS is taken over"
    )
    p.add_argument(
        "--restart-grace",
        type=float,
        default=10.0,
        help="restart: seconds after ready in which a re-issue would still be counted",
    )
    p.add_argument(
        "--fairness-pace",
        type=float,
        default=1.0,
        help="fairness: tasks per second the other namespace creates meanwhile",
    )
    p.add_argument(
        "--ready-log",
        default="",
        help="restart: regex of the operator log line that says every schedule is loaded",
    )
    p.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="run the operator under tracemalloc and snapshot idle / active / ended",
    )
    p.add_argument(
        "--heap-types",
        action="store_true",
        help="run the operator through the wrapper for live-object histograms (no tracing)",
    )
    p.add_argument(
        "--fill-rate",
        type=float,
        default=0.0,
        help="create burst tasks at this rate instead of at once (default: 10/s under "
        "--tracemalloc, which cannot keep up with a real burst)",
    )
    p.add_argument(
        "--burst-timeout",
        type=float,
        default=0.0,
        help="seconds to wait for a burst's Secrets (default max(300, 0.4 per task))",
    )
    p.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the operator (repeatable), e.g. "
        "AGENTCRED_NAMESPACE_CONCURRENCY=16 to try a setting",
    )
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="only remove what an interrupted run left (tasks, namespace, backend, KV)",
    )
    p.add_argument("--py-spy", action="store_true", help="record py-spy CPU profiles per scenario")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-latest", action="store_true", help="do not update latest.{json,md,png}")
    return p


class Interrupted(Exception):
    pass


def _on_term(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model or platform.machine()}), {mem:.0f} GiB"


def _commit() -> str:
    try:
        head = subprocess.run(  # the last commit that changed the operator's code
            ["git", "log", "-1", "--format=%h", "--", "operator"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "operator"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (operator modified)' if dirty else ''}"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    chosen = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = chosen - set(ALL + ON_DEMAND)
    scale_ok = 1 <= args.scale_size <= scale_scenario.MAX_SIZE
    if unknown or not sizes or max(sizes) > MAX_SIZE or min(sizes) < 1 or not scale_ok:
        print(
            f"bench: unknown scenarios {sorted(unknown)}, sizes outside 1..{MAX_SIZE} or "
            f"--scale-size outside 1..{scale_scenario.MAX_SIZE}",
            file=sys.stderr,
        )
        return 2
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    progress_log = (out / "progress.log").open("a")

    def progress(message: str) -> None:
        line = f"[bench {time.monotonic() - t0:7.1f}s] {message}"
        print(line, file=sys.stderr, flush=True)
        progress_log.write(line + "\n")
        progress_log.flush()

    signal.signal(signal.SIGTERM, _on_term)
    state = StateDir(stack.default_root())
    env = stack.up(state, log=lambda m: progress(f"testbed: {m}"))
    kube = Kube.from_env(env)
    vault = Vault(env["VAULT_ADDR"], env["VAULT_TOKEN"])
    workload = Workload(
        kube,
        vault,
        env,
        run_id=stamp,
        mode=args.mode,
        credential=args.credential,
        shared_refresh=f"{args.shared_refresh:g}s",
    )
    if args.cleanup:
        problems = workload.teardown(operator_running=False)
        problems += fairness.teardown(kube, vault)
        for problem in problems:
            progress(f"cleanup: {problem}")
        return 1 if problems else 0
    recorder = SecretRecorder(kube)
    sampler = Sampler(t0, recorder.active)
    ctx = Ctx(
        kube,
        vault,
        workload,
        recorder,
        sampler,
        env,
        out,
        progress,
        tracemalloc_frames=args.tracemalloc or (0 if args.heap_types else -1),
        fill_rate=args.fill_rate or (10.0 if args.tracemalloc else 0.0),
        burst_timeout=args.burst_timeout,
        operator_env=dict(kv.split("=", 1) for kv in args.operator_env),
        py_spy=args.py_spy,
        ready_pattern=args.ready_log,
        restart_grace=args.restart_grace,
    )
    results: dict[str, Any] = {
        "meta": {
            "stamp": stamp,
            "machine": _machine(),
            "load_start": _load(),
            "mode": args.mode,
            "credential": args.credential,
            "operator_commit": _commit(),
            "python": platform.python_version(),
            "args": vars(args) | {"out": str(args.out)},
            "tracemalloc": args.tracemalloc,
            "py_spy": args.py_spy,
            "operator_env": dict(kv.split("=", 1) for kv in args.operator_env),
        },
        "idle": {"rss_mib": None},
        "floor": [],
        "sizes": [],
        "snapshot_active": {},
    }
    status = 0
    try:
        progress(
            f"run {stamp}: sizes {sizes}, scenarios {sorted(chosen)}, machine {_machine()}, "
            f"load {_load()}"
        )
        workload.prepare()
        recorder.start()
        sampler.start()
        op = ctx.start_operator()
        progress(f"operator started (pid {op.pid}, log {op.log_path})")
        deadline = time.monotonic() + 300
        while not op.healthy() and time.monotonic() < deadline and op.alive():
            time.sleep(0.2)
        shared_ones = [SHARED_CREDENTIAL]
        if args.mode == "identity":  # one AgentCredential for every task
            shared_ones.append(workload.per_task_credential())
        ready = workload.wait_credentials_ready(shared_ones)
        progress(f"operator healthy; {ready} shared AgentCredential(s) Ready")
        results["idle"] = scenarios.idle(ctx, args.idle_seconds)
        progress(f"idle RSS {results['idle']['rss_mib']:.0f} MiB")
        scenarios.tracemalloc_snapshot(ctx, "idle")
        for size in sizes:
            run: dict[str, Any] = {"size": size}
            results["sizes"].append(run)  # filled as it goes: a failure keeps what was measured
            _one_size(ctx, run, chosen, results)
        if "paced" in chosen:
            results["paced"] = scenarios.paced(ctx, args.rate, args.duration)
            _end_all(ctx, "paced", "paced")
        if "shared" in chosen:
            size = args.shared_size or min(1000, max(sizes))
            results["shared"] = scenarios.shared(
                ctx, size, args.shared_refresh, args.shared_intervals
            )
            _end_all(ctx, f"shared-{size}", "shared")
        if "fairness" in chosen:
            results["fairness"] = _fairness(ctx, args)
        if "quarantine" in chosen:
            results["quarantine"] = quarantine_scenario.run(ctx, args.quarantine_size)
        if "scale" in chosen:
            results["scale"] = scale_scenario.run(
                ctx,
                args.scale_size,
                results["idle"]["rss_mib"],
                settle_seconds=args.scale_settle,
                rest_seconds=args.scale_rest,
            )
        scenarios.settle(ctx, timeout=60)
        results["final_rss_mib"] = ctx.op().rss()
    except (KeyboardInterrupt, Interrupted):
        progress("interrupted: cleaning up")
        status = 130
    except Exception as exc:
        progress(f"failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        results["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish cleaning up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        results["meta"]["load_end"] = _load()
        results["rss_samples"] = _downsample([s.__dict__ for s in sampler.samples], MAX_SAMPLES)
        results["profiles"] = ctx.profiles
        _write(results, args, out, progress)
        progress("teardown: deleting tasks, namespace, backend; stopping the operator")
        op_running = ctx.operator is not None and ctx.operator.alive()
        problems = workload.teardown(operator_running=op_running)
        if "fairness" in chosen:
            problems += fairness.teardown(kube, vault)
        if "quarantine" in chosen:
            try:
                quarantine_scenario.teardown(ctx)
            except Exception as exc:  # the other steps still ran
                problems.append(f"quarantine teardown: {type(exc).__name__}: {exc}")
        if "scale" in chosen:
            try:
                scale_scenario.teardown(ctx)
            except Exception as exc:  # the other steps still ran
                problems.append(f"scale teardown: {type(exc).__name__}: {exc}")
        for problem in problems:
            progress(f"teardown: {problem} (run `python -m bench.run --cleanup` again)")
        if ctx.operator is not None:
            ctx.operator.stop()
        sampler.stop()
        recorder.stop()
        kube.close()
        vault.close()
        progress("done")
        progress_log.close()
    return status


def _one_size(ctx: Ctx, run: dict[str, Any], chosen: set[str], results: dict[str, Any]) -> None:
    size = run["size"]
    if not chosen & {"floor", "burst", "restart", "completion"}:
        return
    identities = ctx.workload.identities(size)
    if "floor" in chosen:
        ctx.progress(f"floor: {size} tasks, 16 threads")
        result = floor.run(
            ctx.kube, ctx.vault, ctx.workload, identities, label=str(size), progress=ctx.progress
        )
        results["floor"].append(result)
    if not chosen & {"burst", "restart", "completion"}:
        return
    scenario = f"burst-{size}"
    run["burst"] = scenarios.burst(ctx, size, scenario=scenario, identities=identities)
    label = f"active-{size}"
    results["snapshot_active"][label] = ctx.recorder.active()
    scenarios.tracemalloc_snapshot(ctx, label)
    if "restart" in chosen:
        run["restart"] = scenarios.restart(ctx, scenario)
    names = [t["metadata"]["name"] for t in ctx.workload.tasks(scenario)]
    if "completion" in chosen:
        run["complete"] = scenarios.completion(ctx, scenario, names)
    run["delete_seconds"] = ctx.workload.delete_tasks(names, timeout=max(180.0, size / 5))
    ctx.progress(f"{scenario}: {len(names)} tasks deleted in {run['delete_seconds']:.1f}s")
    scenarios.settle(ctx, timeout=60)
    time.sleep(5)
    run["rss_after_end_mib"] = ctx.op().rss()
    ctx.progress(f"RSS after the {size} tasks ended: {run['rss_after_end_mib']:.0f} MiB")
    scenarios.tracemalloc_snapshot(ctx, f"ended-{size}")


def _fairness(ctx: Ctx, args: argparse.Namespace) -> dict[str, Any]:
    """One namespace floods while another keeps creating a task a second (bench/fairness.py)."""
    ctx.progress(f"fairness: preparing the victim namespace {fairness.VICTIM_NAMESPACE}")
    fairness.prepare(
        ctx.kube,
        ctx.vault,
        ctx.env,
        ctx.workload.run_id,
        fairness.accounts_needed(args.fairness_pace),
    )
    scenarios.settle(ctx)
    ctx.sampler.phase = "fairness"
    result = fairness.run(
        ctx.kube,
        ctx.workload,
        ctx.recorder,
        args.fairness_flood,
        ctx.progress,
        pace=args.fairness_pace,
    )
    names = [t["metadata"]["name"] for t in ctx.workload.tasks("fairness-flood")]
    ctx.progress(f"fairness: deleting the flood's {len(names)} tasks and the victim's side")
    ctx.workload.delete_tasks(names, timeout=max(180.0, len(names) / 5))
    for problem in fairness.teardown(ctx.kube, ctx.vault):
        ctx.progress(f"fairness teardown: {problem}")
    return result


def _end_all(ctx: Ctx, scenario: str, what: str) -> None:
    names = [t["metadata"]["name"] for t in ctx.workload.tasks(scenario)]
    ctx.progress(f"{what}: completing and deleting {len(names)} tasks")
    scenarios.completion(ctx, scenario, names)
    ctx.workload.delete_tasks(names, timeout=max(180.0, len(names) / 5))


def _downsample(samples: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    if len(samples) <= limit:
        return samples
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


def _write(results: dict[str, Any], args: argparse.Namespace, out: Path, progress: Any) -> None:
    stamp = results["meta"]["stamp"]
    text = json.dumps(results, indent=1, default=str)
    (out / "results.json").write_text(text)
    dated = args.out / f"{stamp}.json"
    dated.write_text(text)
    table = report.markdown(results) if results.get("idle", {}).get("rss_mib") else ""
    (out / "table.md").write_text(table)
    with contextlib.suppress(Exception):
        report.plot(results, out / "plot.png")
    bursts = any("burst" in run for run in results["sizes"])  # a scale-only run: not latest
    if not args.no_latest and not results.get("error") and bursts:
        (args.out / "latest.json").write_text(text)
        (args.out / "latest.md").write_text(table)
        if (out / "plot.png").exists():
            (args.out / "latest.png").write_bytes((out / "plot.png").read_bytes())
    progress(f"results: {dated}, {out / 'table.md'}, {out / 'plot.png'}")
    if table:
        print(table)


if __name__ == "__main__":
    sys.exit(main())
