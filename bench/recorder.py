"""When each generated Secret appeared and disappeared, seen through one Secret watch.

A metadata-only watch on the bench namespace with the operator's own labels
(``app.kubernetes.io/managed-by=agentcred``, ``agentcred.io/credential``) timestamps
every ADDED and DELETED event as it arrives, keyed by the task (label
``agentcred.io/task``). Latencies are computed against the time the benchmark's own
create or patch call returned, on the same monotonic clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from agentcred.models.api_names import Label
from bench.kubeapi import Kube, WatchEvent, ns_path
from bench.workload import NAMESPACE, SECRET_SELECTOR

TASK_LABEL = Label.TASK.value


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


class SecretRecorder:
    def __init__(self, kube: Kube, namespace: str = NAMESPACE) -> None:
        self.kube, self.namespace = kube, namespace
        self.added: dict[str, float] = {}  # task -> first ADDED of its Secret
        self.deleted: dict[str, float] = {}  # task -> DELETED of its Secret
        self.live: set[str] = set()  # Secret names that exist now
        self.modified = 0
        self.resynced = 0  # changes found by a periodic re-list that the watch missed
        self._by_name: dict[str, str] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        path = ns_path(self.namespace, "secrets")
        items, version = self.kube.list_version(path, SECRET_SELECTOR)
        for item in items:
            self.live.add(item["metadata"]["name"])
        self._thread = threading.Thread(
            target=self.kube.watch,
            args=(path, SECRET_SELECTOR, self._on_event, self._stop, version),
            name="secret-watch",
            daemon=True,
        )
        self._thread.start()

    def _on_event(self, event: WatchEvent) -> None:
        if event.type == "RELIST":
            self._relist(event.obj.get("items") or [], event.at)
            return
        meta = event.obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return
        task = (meta.get("labels") or {}).get(TASK_LABEL, name)
        with self._cond:
            if event.type == "ADDED":
                self._by_name[name] = task
                self.added.setdefault(task, event.at)
                self.deleted.pop(task, None)
                self.live.add(name)
            elif event.type == "DELETED":
                self.deleted.setdefault(task, event.at)
                self.live.discard(name)
            elif event.type == "MODIFIED":
                self.modified += 1
            self._cond.notify_all()

    def _relist(self, items: list[dict[str, Any]], at: float) -> int:
        """Apply a full list: what is gone was DELETED, what is new was ADDED (at ``at``)."""
        names = {i["metadata"]["name"]: i for i in items}
        changes = 0
        with self._cond:
            for name in list(self.live):
                if name not in names:
                    task = self._by_name.get(name, name)
                    changes += task not in self.deleted
                    self.deleted.setdefault(task, at)
                    self.live.discard(name)
            for name, item in names.items():
                task = (item["metadata"].get("labels") or {}).get(TASK_LABEL, name)
                self._by_name[name] = task
                changes += task not in self.added
                changes += self.deleted.pop(task, None) is not None  # it exists: not deleted
                self.added.setdefault(task, at)
                self.live.add(name)
            self._cond.notify_all()
        return changes

    def resync(self) -> int:
        """Re-list and apply what the watch missed (a safety net; counted in ``resynced``)."""
        items, _ = self.kube.list_version(ns_path(self.namespace, "secrets"), SECRET_SELECTOR)
        changes = self._relist(items, time.monotonic())
        self.resynced += changes
        return changes

    def active(self) -> int:
        return len(self.live)

    def count_added(self, tasks: Iterable[str]) -> int:
        with self._cond:
            return sum(1 for t in tasks if t in self.added)

    def count_deleted(self, tasks: Iterable[str]) -> int:
        with self._cond:
            return sum(1 for t in tasks if t in self.deleted)

    def wait(self, predicate: Any, timeout: float, resync_every: float = 15.0) -> bool:
        """Wait for ``predicate``; re-list every ``resync_every`` s in case the watch missed
        an event (a missed one is then timed at the re-list, i.e. a little late)."""
        deadline = time.monotonic() + timeout
        next_resync = time.monotonic() + resync_every
        while True:
            with self._cond:
                if predicate():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + resync_every
                self.resync()

    def stop(self) -> None:
        self._stop.set()
