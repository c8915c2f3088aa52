"""Profiles of the operator under load: py-spy for CPU, tracemalloc snapshots for memory.

``make bench ARGS="--py-spy"`` records py-spy (raw collapsed stacks, on-CPU samples
only) during each scenario; ``--tracemalloc 25`` runs the operator through
``bench/traced_operator.py`` and takes heap snapshots (idle, N tasks active, after
they end). ``python -m bench.profiling <run folder>`` turns them into the tables of
``docs/performance.md``: CPU by component and by function (self and total), memory by
component and allocation site, and the per-task cost (snapshot at N active minus idle,
divided by N).

Attribution: an allocation (or a CPU sample) belongs to the innermost frame that is
not generic plumbing (json, copy, asyncio, typing, logging internals ...), so a dict
that ``json.loads`` builds for Kopf's watcher counts as Kopf's, not json's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import subprocess
import sys
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# CPU: only the event loop's and the thread pool's plumbing is skipped, so json, copy,
# TLS and logging show as what they cost.
GENERIC_CPU = (
    "/asyncio/",
    "/selectors.py",
    "/functools.py",
    "/contextlib.py",
    "/threading.py",
    "<frozen",
    "/typing.py",
    "/enum.py",
    "/abc.py",
)
GENERIC = (
    "/json/",
    "/copy.py",
    "/asyncio/",
    "/typing.py",
    "/logging/",
    "/re/",
    "/collections/",
    "/functools.py",
    "/contextlib.py",
    "/enum.py",
    "/abc.py",
    "/dataclasses.py",
    "/threading.py",
    "/selectors.py",
    "/ssl.py",
    "/socket.py",
    "/weakref.py",
    "/_weakrefset.py",
    "<frozen",
    "<string>",
    "/datetime.py",
    "/traceback.py",
    "/linecache.py",
    "/tracemalloc.py",
)
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("/kopf/_core/engines/daemons", "kopf daemons"),
    ("/kopf/_core/reactor/queueing", "kopf watch queues (per object)"),
    ("/kopf/_cogs/clients/watching", "kopf watch streams"),
    ("/kopf/_core/reactor/processing", "kopf processing"),
    ("/kopf/_core/actions", "kopf handler execution"),
    ("/kopf/_cogs/structs", "kopf bodies/diffs/patches"),
    ("/kopf/_core/engines/indexing", "kopf indexes"),
    ("/kopf/_cogs/clients", "kopf API client"),
    ("/kopf/_cogs/configs", "kopf progress/diff-base storage"),
    ("/kopf/", "kopf (other)"),
    ("/agentcred/cli.py", "asyncio event loop (own work: I/O callbacks, scheduling)"),
    ("/bench/traced_operator.py", "asyncio event loop (own work: I/O callbacks, scheduling)"),
    ("/agentcred/kube/watch", "agentcred Secret/pod watch"),
    ("/agentcred/audit.py", "agentcred audit/log lines"),
    ("/agentcred/logs.py", "agentcred audit/log lines"),
    ("/agentcred/kube/", "agentcred kube layer"),
    ("/agentcred/services/static_reads", "agentcred static-read cache"),
    ("/agentcred/services/", "agentcred services"),
    ("/agentcred/backends/", "agentcred backends"),
    ("/agentcred/handlers/", "agentcred handlers"),
    ("/agentcred/models/", "agentcred models"),
    ("/agentcred/", "agentcred (other)"),
    ("/kubernetes_asyncio/", "kubernetes_asyncio"),
    ("/aiohttp/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/hvac/", "hvac/requests"),
    ("/requests/", "hvac/requests"),
    ("/urllib3/", "hvac/requests"),
    ("/prometheus_client/", "prometheus_client"),
    ("/pythonjsonlogger/", "logging (JSON lines)"),
    ("/logging/", "logging (JSON lines)"),
    ("/netrc.py", "per-request ~/.netrc and proxy lookups (trust_env)"),
    ("/urllib/request.py", "per-request ~/.netrc and proxy lookups (trust_env)"),
    ("/http/client.py", "hvac/requests"),
    ("/concurrent/futures/", "thread pool hand-off (backend calls)"),
    ("/ssl.py", "TLS"),
    ("/json/", "json"),
    ("/copy.py", "copy.deepcopy"),
    ("/site-packages/", "other libraries"),
)
PY_SPY_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def component(filename: str) -> str:
    filename = "/" + filename.lstrip("/")  # py-spy prints paths relative to site-packages
    for needle, name in COMPONENTS:
        if needle in filename:
            return name
    return "stdlib and other"


def short(filename: str) -> str:
    for marker in ("/site-packages/", "/operator/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def generic(filename: str, kinds: tuple[str, ...] = GENERIC) -> bool:
    filename = "/" + filename.lstrip("/")
    return any(g in filename for g in kinds)


# Innermost frames where a thread or the event loop waits rather than works: py-spy's
# idle detection misses some of them on a loaded machine, so they are counted apart.
IDLE_FRAMES = (
    "EpollSelector.select (selectors.py",
    "_worker (concurrent/futures/thread.py:81)",
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "select (selectors.py",
    "poll (selectors.py",
)


def idle_stack(innermost: str) -> bool:
    return innermost.startswith(IDLE_FRAMES)


# -- py-spy --------------------------------------------------------------------------------


def start_py_spy(pid: int, target: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """Record on-CPU stacks of ``pid`` at 50 Hz into ``target`` (raw collapsed stacks)."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return None
    return subprocess.Popen(
        [
            str(exe),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "50",
            "--duration",
            str(max(1, int(seconds))),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(target),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spy(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a recording early (SIGINT makes py-spy write what it has), bounded."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _frames(stack: str) -> list[tuple[str, str, int]]:
    """py-spy raw frames, outermost first, as (function, file, line)."""
    frames = []
    for part in stack.split(";"):
        match = PY_SPY_FRAME.match(part.strip())
        if match:
            frames.append((match["func"], match["file"], int(match["line"] or 0)))
        else:
            frames.append((part.strip(), "", 0))
    return frames


def py_spy_summary(path: Path, top: int = 25) -> dict[str, Any]:
    """Samples by component (attributed as above), by function self and total."""
    total = idle = 0
    by_component: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        func, file, lineno = frames[-1]
        if idle_stack(f"{func} ({short(file)}:{lineno})"):
            idle += count
            continue
        total += count
        owner = next(
            (f for f in reversed(frames) if f[1] and not generic(f[1], GENERIC_CPU)), frames[-1]
        )
        by_component[component(owner[1])] += count
        self_time[f"{func} ({short(file)}:{lineno})"] += count
        seen: set[str] = set()
        for func, file, _lineno in frames:
            key = f"{func} ({short(file)})"
            if key not in seen:
                seen.add(key)
                total_time[key] += count
        mine = next((f for f in reversed(frames) if "agentcred/" in f[1]), None)
        if mine is not None:
            ours[f"{mine[0]} ({short(mine[1])}:{mine[2]})"] += count
    return {
        "samples": total,
        "idle_samples": idle,
        "by_component": by_component.most_common(),
        "self": self_time.most_common(top),
        "total": total_time.most_common(top),
        "agentcred_innermost": ours.most_common(top),
    }


# -- tracemalloc ---------------------------------------------------------------------------


def _owner(frames: Sequence[tracemalloc.Frame]) -> tracemalloc.Frame:
    """The innermost non-generic frame (tracemalloc lists the most recent first)."""
    for frame in frames:
        if not generic(frame.filename):
            return frame
    return frames[0]


def heap_groups(path: Path) -> tuple[dict[str, list[int]], dict[str, list[int]], int]:
    """(by component, by allocation site, total bytes) for one snapshot; values [bytes, count]."""
    snapshot = tracemalloc.Snapshot.load(str(path))
    by_component: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    total = 0
    for stat in snapshot.statistics("traceback"):
        owner = _owner(stat.traceback)
        name = component(owner.filename)
        site = f"{short(owner.filename)}:{owner.lineno}"
        for bucket in (by_component[name], by_site[f"{name} | {site}"]):
            bucket[0] += stat.size
            bucket[1] += stat.count
        total += stat.size
    return dict(by_component), dict(by_site), total


def _top(groups: dict[str, list[int]], n: int) -> list[tuple[str, int, int]]:
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])[:n]
    return [(k, v[0], v[1]) for k, v in ranked]


def _diff(
    after: dict[str, list[int]], before: dict[str, list[int]], per: int, n: int
) -> list[tuple[str, float, float]]:
    keys = set(after) | set(before)
    rows = [
        (
            k,
            (after.get(k, [0, 0])[0] - before.get(k, [0, 0])[0]) / per,
            (after.get(k, [0, 0])[1] - before.get(k, [0, 0])[1]) / per,
        )
        for k in keys
    ]
    return sorted(rows, key=lambda r: -r[1])[:n]


def tracemalloc_summary(idle: Path, loaded: Path, tasks: int, top: int = 25) -> dict[str, Any]:
    idle_c, idle_s, idle_total = heap_groups(idle)
    load_c, load_s, load_total = heap_groups(loaded)
    return {
        "idle_traced_mib": idle_total / 2**20,
        "loaded_traced_mib": load_total / 2**20,
        "tasks": tasks,
        "per_task_bytes": (load_total - idle_total) / max(tasks, 1),
        "loaded_by_component": _top(load_c, top),
        "loaded_by_site": _top(load_s, top),
        "per_task_by_component": _diff(load_c, idle_c, max(tasks, 1), top),
        "per_task_by_site": _diff(load_s, idle_s, max(tasks, 1), top),
    }


def types_summary(path: Path, top: int = 30) -> list[tuple[str, int]]:
    data = json.loads(path.read_text())
    return list(Counter(data.get("types", {})).most_common(top))


def types_per_task(idle: Path, loaded: Path, tasks: int, top: int = 30) -> dict[str, Any]:
    """Live objects per task by type: (histogram at N tasks - idle histogram) / N."""
    before, after = json.loads(idle.read_text()), json.loads(loaded.read_text())
    old, new = before.get("types", {}), after.get("types", {})
    rows = sorted(
        ((k, (new.get(k, 0) - old.get(k, 0)) / max(tasks, 1)) for k in set(old) | set(new)),
        key=lambda r: -r[1],
    )
    return {
        "gc_objects_per_task": (after["gc_objects"] - before["gc_objects"]) / max(tasks, 1),
        "by_type": rows[:top],
    }


# -- report --------------------------------------------------------------------------------


def _kib(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def render(run: Path, results: dict[str, Any]) -> str:
    """A Markdown report of every profile in ``run`` (written to ``run/profile.md``)."""
    lines = [f"# Profile of run {run.name}", ""]
    for spy in sorted(run.glob("py-spy-*.txt")):
        summary = py_spy_summary(spy)
        if not summary["samples"]:
            continue
        total = summary["samples"]
        lines += [
            f"## CPU: {spy.stem} ({total} busy samples at 50 Hz; {summary['idle_samples']} "
            "samples of waiting threads left out)",
            "",
        ]
        lines += ["| component | share |", "|---|---|"]
        lines += [f"| {k} | {100 * v / total:.1f} % |" for k, v in summary["by_component"]]
        lines += ["", "| function (self) | share |", "|---|---|"]
        lines += [f"| `{k}` | {100 * v / total:.1f} % |" for k, v in summary["self"]]
        lines += ["", "| function (total, incl. callees) | share |", "|---|---|"]
        lines += [f"| `{k}` | {100 * v / total:.1f} % |" for k, v in summary["total"]]
        lines += ["", "| innermost agentcred frame | share |", "|---|---|"]
        lines += [f"| `{k}` | {100 * v / total:.1f} % |" for k, v in summary["agentcred_innermost"]]
        lines.append("")
    lines += _histograms(run, results)
    snaps = {p.stem.removeprefix("tracemalloc-"): p for p in run.glob("tracemalloc-*.pickle")}
    idle = snaps.get("idle")
    for label, path in sorted(snaps.items()):
        if label == "idle" or idle is None:
            continue
        match = re.search(r"(\d+)", label)
        tasks = int(match.group(1)) if match and label.startswith("active") else 0
        if not tasks:
            tasks = int(results.get("snapshot_active", {}).get(label, 0)) or 1
        summary = tracemalloc_summary(idle, path, tasks)
        title = f"## Memory: {label} vs idle ({tasks} tasks; figures per task)"
        if tasks == 1:
            title = f"## Memory: {label} vs idle (what is left, in total; 'per task' = total)"
        lines += [
            title,
            "",
            f"Traced Python heap: idle {summary['idle_traced_mib']:.1f} MiB, "
            f"{label} {summary['loaded_traced_mib']:.1f} MiB: "
            f"{_kib(summary['per_task_bytes'])} per task.",
            "",
            "| component | per task | objects per task |",
            "|---|---|---|",
        ]
        lines += [
            f"| {k} | {_kib(b)} | {c:.1f} |" for k, b, c in summary["per_task_by_component"] if b
        ]
        lines += ["", "| allocation site (per task) | bytes | objects |", "|---|---|---|"]
        lines += [f"| {k} | {b:,.0f} | {c:.1f} |" for k, b, c in summary["per_task_by_site"]]
        lines += ["", f"| top allocation sites at {label} | MiB | objects |", "|---|---|---|"]
        lines += [f"| {k} | {b / 2**20:.1f} | {c:,} |" for k, b, c in summary["loaded_by_site"]]
        types = path.with_suffix(".types.json")
        if types.exists():
            lines += ["", "| live objects by type | count |", "|---|---|"]
            lines += [f"| {k} | {v:,} |" for k, v in types_summary(types)]
        lines.append("")
    return "\n".join(lines)


def _histograms(run: Path, results: dict[str, Any]) -> list[str]:
    """Per-task live objects by type from the wrapper's histograms (any run with them)."""
    hists = {
        p.name.removeprefix("tracemalloc-").removesuffix(".types.json"): p
        for p in run.glob("tracemalloc-*.types.json")
    }
    idle = hists.get("idle")
    lines: list[str] = []
    if idle is None:
        return lines
    for label, path in sorted(hists.items()):
        if not label.startswith("active-"):
            continue
        tasks = int(results.get("snapshot_active", {}).get(label, 0)) or int(label.split("-")[1])
        summary = types_per_task(idle, path, tasks)
        lines += [
            f"## Live objects: {label} vs idle ({tasks} active tasks)",
            "",
            f"{summary['gc_objects_per_task']:.0f} gc-tracked objects per task.",
            "",
            "| type | objects per task |",
            "|---|---|",
        ]
        lines += [f"| `{k}` | {v:.1f} |" for k, v in summary["by_type"]]
        lines.append("")
    return lines


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("run", type=Path, help="a run folder (bench/results/<stamp>/)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    results: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        results = json.loads((args.run / "results.json").read_text())
    text = render(args.run, results)
    (args.run / "profile.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
