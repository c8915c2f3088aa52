"""The operator under test: started as a local process, watched from ``/proc``, stopped by PID.

The benchmark starts ``agentcred run`` itself (never a Deployment), through
``bench/as_installed.py`` so that only the image's packages are importable, with the environment
``make dev`` uses, JSON logs at INFO to a file, a metrics port and a liveness endpoint,
and records its PID so that cleanup stops exactly that process and nothing else.
Resident memory comes from ``/proc/<pid>/status`` (VmRSS), CPU time from
``/proc/<pid>/stat`` (utime + stime), counters from the Prometheus endpoint.

``--tracemalloc N`` runs it through ``bench/traced_operator.py`` (tracemalloc with N
frames) so that SIGUSR2 writes a heap snapshot; the operator package itself knows
nothing about it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fairness import VICTIM_NAMESPACE
from bench.workload import NAMESPACE

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The operator must work without the admin's credentials (hvac would pick up VAULT_TOKEN).
BENCH_NAMESPACES = (NAMESPACE, VICTIM_NAMESPACE)
ADMIN_ONLY = ("VAULT_TOKEN", "PGPASSWORD", "PGUSER")
METRIC_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
TRACED = Path(__file__).with_name("traced_operator.py")
AS_INSTALLED = Path(__file__).with_name("as_installed.py")  # the image's packages only
NUMBERS = re.compile(r"\d+")


def _folded(message: str) -> str:
    """A log message with what differs per task folded away: numbers, and an audit line
    (a JSON record) reduced to its action, outcome and reason."""
    if message.startswith("{"):
        try:
            audit = json.loads(message)
        except ValueError:
            audit = None
        if isinstance(audit, dict) and "action" in audit:
            return f"audit {audit.get('action')} {audit.get('outcome')} {audit.get('reason', '')}"
    return NUMBERS.sub("N", message.split("\n", 1)[0])[:200]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is the state (field 3): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Prometheus text format -> {name: {sorted label pairs: value}}."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        if not match:
            continue
        labels = tuple(sorted(LABEL.findall(match["labels"] or "")))
        with contextlib.suppress(ValueError):
            out[match["name"]][labels] = float(match["value"])
    return dict(out)


@dataclass
class Operator:
    """One running operator process that the benchmark started."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    health_port: int
    started_at: float  # time.monotonic() at launch
    snapshots: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> float | None:
        return rss_mib(self.pid)

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as response:
                return bool(200 <= response.status < 300)
        except (OSError, ValueError):
            return False

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
            ) as response:
                return parse_metrics(response.read().decode())
        except (OSError, ValueError):
            return {}

    def backend_calls(self) -> dict[str, float]:
        """``agentcred_backend_calls_total`` (calls that reached a backend) summed by
        operation (all backends, outcomes)."""
        return self._by_operation("agentcred_backend_calls_total")

    def backend_cache_hits(self) -> dict[str, float]:
        """``agentcred_backend_cache_hits_total`` (calls a backend was spared: static reads
        served by a shared read) summed by operation (all backends)."""
        return self._by_operation("agentcred_backend_cache_hits_total")

    def gauge(self, metric: str) -> float | None:
        """A metric's value summed over its labels (None: not exported, or no answer)."""
        values = self.metrics().get(metric)
        return None if values is None else sum(values.values())

    def _by_operation(self, metric: str) -> dict[str, float]:
        by_op: dict[str, float] = defaultdict(float)
        for labels, value in self.metrics().get(metric, {}).items():
            by_op[dict(labels).get("operation", "?")] += value
        return dict(by_op)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_problems(self, since: int, top: int = 8) -> dict[str, Any]:
        """Warnings and errors the operator logged after byte ``since``: counts and the
        most frequent messages (task names and numbers folded), e.g. API timeouts that
        made handlers retry."""
        return self.log_summary(since, top, ("warn", "warning", "error", "critical"))

    def log_summary(
        self, since: int, top: int = 8, severities: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """What the operator logged after byte ``since`` (only ``severities``, when given):
        counts by severity and the most frequent messages, numbers folded. An audit line's
        message is its JSON record, so what a restart redid shows by action and outcome."""
        counts: Counter[str] = Counter()
        messages: Counter[str] = Counter()
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(since)
                data = fh.read()
        except OSError:
            return {}
        for raw in data.splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            severity = str(record.get("severity") or "")
            if severities is not None and severity not in severities:
                continue
            counts[severity] += 1
            messages[_folded(str(record.get("message") or ""))] += 1
        return {"counts": dict(counts), "top": messages.most_common(top)}

    def snapshot(self, label: str, timeout: float = 600) -> Path | None:
        """Ask a ``--tracemalloc`` operator for a heap snapshot; wait until it is written."""
        folder = self.log_path.parent
        before = set(folder.glob("tracemalloc-*.done"))
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            new = set(folder.glob("tracemalloc-*.done")) - before
            if new:
                done = sorted(new)[0]
                target = folder / f"tracemalloc-{label}.pickle"
                if done.with_suffix(".pickle").exists():
                    done.with_suffix(".pickle").rename(target)
                hist = done.with_suffix(".types.json")
                if hist.exists():
                    hist.rename(folder / f"tracemalloc-{label}.types.json")
                done.unlink()
                self.snapshots.append(target)
                return target if target.exists() else target.with_suffix(".types.json")
            time.sleep(0.5)
        return None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM this process (its group), SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def operator_env(
    testbed_env: dict[str, str], metrics_port: int, health_port: int
) -> dict[str, str]:
    env = {**os.environ, **testbed_env}
    for name in ADMIN_ONLY:
        env.pop(name, None)
    env.update(
        {
            "AGENTCRED_LOG_FORMAT": "json",
            "AGENTCRED_LOG_LEVEL": "INFO",
            "AGENTCRED_METRICS_PORT": str(metrics_port),
            "AGENTCRED_LIVENESS_ENDPOINT": f"http://127.0.0.1:{health_port}/healthz",
            "PYTHONUNBUFFERED": "1",
            # Only the bench's own namespaces: the testbed may be running tests beside it,
            # whose tasks are their own operators' (--operator-env may widen it).
            "AGENTCRED_NAMESPACES": ",".join(BENCH_NAMESPACES),
        }
    )
    return env


def start(
    testbed_env: dict[str, str],
    log_path: Path,
    *,
    tracemalloc_frames: int = -1,
    extra_env: dict[str, str] | None = None,
) -> Operator:
    metrics_port, health_port = free_port(), free_port()
    env = operator_env(testbed_env, metrics_port, health_port)
    env.update(extra_env or {})
    if tracemalloc_frames >= 0:  # 0: the wrapper's object histograms, no tracing
        argv = [sys.executable, str(TRACED), "run"]
        env["BENCH_TRACEMALLOC_DIR"] = str(log_path.parent)
        env["BENCH_TRACEMALLOC_FRAMES"] = str(tracemalloc_frames)
    else:
        argv = [sys.executable, str(AS_INSTALLED), "run"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()
    return Operator(proc, log_path, metrics_port, health_port, time.monotonic())


@dataclass
class Sample:
    t: float  # seconds since the run started
    rss_mib: float
    cpu_s: float
    active: int  # generated Secrets that exist
    phase: str


class Sampler:
    """Samples the current operator's RSS and CPU (and the active count) in a thread."""

    def __init__(self, t0: float, active: Callable[[], int], interval: float = 0.5) -> None:
        self.t0, self._active, self.interval = t0, active, interval
        self.samples: list[Sample] = []
        self.operator: Operator | None = None
        self.phase = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            op = self.operator
            if op is None:
                continue
            rss, cpu = op.rss(), op.cpu()
            if rss is None or cpu is None:
                continue
            self.samples.append(
                Sample(time.monotonic() - self.t0, rss, cpu, self._active(), self.phase)
            )

    def peak_rss(self, since: float) -> float:
        values = [s.rss_mib for s in self.samples if s.t >= since - self.t0]
        return max(values, default=0.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
