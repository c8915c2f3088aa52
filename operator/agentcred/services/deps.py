"""What the lifecycle code needs from the outside, gathered in one object.

Built once at operator start (handlers/startup.py) and passed down; tests build their
own. Time and randomness come from here so that schedules are reproducible.
"""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from agentcred.backends.registry import BackendRegistry
from agentcred.models.quarantine import QuarantineIndex
from agentcred.services.coalesce import Coalescer
from agentcred.services.fair_slots import FairSlots, fair_headroom
from agentcred.services.limits import Limits
from agentcred.services.lookups import Lookups
from agentcred.services.pod_binding import PodIndex
from agentcred.services.scheduler import Scheduler
from agentcred.services.static_reads import StaticReads
from agentcred.services.task_view import TaskView
from agentcred.settings import Settings

# Pod re-assessments running at once (each lists a task's pods and may end the task).
POD_WORKERS = 8
REMOVED_MAX = 100_000


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class TaskLocks:
    """One lock per task: handlers, the scheduler and the Secret watch never act at once.

    A lock lives while someone holds or waits for it, so a caller may take it before
    reading the task (read once, under the lock) without leaving one behind for a task
    that turns out to be gone."""

    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _users: dict[str, int] = field(default_factory=dict)

    @asynccontextmanager
    async def hold(self, uid: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(uid, asyncio.Lock())
        self._users[uid] = self._users.get(uid, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[uid] -= 1
            if not self._users[uid]:
                del self._users[uid]
                if self._locks.get(uid) is lock:
                    del self._locks[uid]

    def forget(self, uid: str) -> None:
        if uid not in self._users:  # never a lock someone holds or waits for
            self._locks.pop(uid, None)


@dataclass
class Deps:
    api: Any  # the Kubernetes API client (opaque here; only agentcred.kube uses it)
    backends: BackendRegistry
    settings: Settings
    clock: Callable[[], datetime.datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)
    locks: TaskLocks = field(default_factory=TaskLocks)
    scheduler: Scheduler = field(default_factory=Scheduler)
    active: set[str] = field(default_factory=set)  # uids of Active tasks (a gauge)
    # Tasks waiting for approval: uid -> since when (epoch seconds), for two gauges.
    awaiting: dict[str, float] = field(default_factory=dict)
    # resourceVersions of generated Secrets as we last wrote them (drift detection), and
    # of lease-record Secrets as last read or written: a write at that version is one request
    # (kube/secrets.write_secret's known_version; a stale one costs a 409 and the long way)
    written: dict[tuple[str, str], str] = field(default_factory=dict)
    # Generated Secrets this process deleted: their DELETED event needs no check (a burst
    # of 1,000 ended tasks would otherwise read 1,000 tasks to learn they are gone).
    # Consumed by the event; cleared whole past REMOVED_MAX (a missed event leaves one).
    removed: set[tuple[str, str]] = field(default_factory=set)
    pods: PodIndex = field(default_factory=PodIndex)
    # uids of ended tasks whose cleanup this process finished (every Secret deleted, every
    # session revoked) with nothing issued since: their finalizer and later steps need
    # not look again. Not kept across restarts (a leader that loses its lease exits): a
    # new process looks once.
    cleaned: set[str] = field(default_factory=set)
    # Tasks an event was handled for here: the initial listing resumes each once; Kopf's
    # re-list after a watch expires (410) is decided as any change (task_events.py).
    seen: set[str] = field(default_factory=set)
    # The resourceVersion of each task's last status write by this process (read once: a
    # watch body older than it is skipped, the event of that write follows).
    versions: dict[str, int] = field(default_factory=dict)
    # uids whose event action failed for now and waits for its retry in the scheduler:
    # their step takes the full path (lifecycle.resume_issuing / finalize / gone), and
    # events meanwhile do not redo it ahead of the backoff (services/task_events.py).
    redo: set[str] = field(default_factory=set)
    # Tasks deleted whose cleanup failed for now: the view to retry it from (the sweep
    # is the net when this process ends first).
    departed: dict[str, TaskView] = field(default_factory=dict)
    static_reads: StaticReads = field(default_factory=StaticReads)
    drift: Coalescer = field(default_factory=lambda: Coalescer("drift"))
    limits: Limits = field(default_factory=Limits)
    lookups: Lookups = field(default_factory=Lookups)
    # The CredentialQuarantines that exist (kept from their watch, loaded at startup):
    # a task one of them matches is refused before any backend call.
    quarantines: QuarantineIndex = field(default_factory=QuarantineIndex)
    # The values of agentcred.io/renew-requested-at already honoured, per task uid.
    renew_requests: dict[str, str] = field(default_factory=dict)
    # Task handlers in flight (settings.task_concurrency); waiters are served in order
    # within a namespace and round-robin across namespaces (settings.namespace_share).
    admission: FairSlots = field(init=False)
    # Pod events, re-assessed off the pod watch: one job per task (coalesced), a few at
    # once, fair across namespaces (services/pod_events.py).
    pod_checks: Coalescer = field(init=False)

    def note_removed(self, namespace: str, name: str) -> None:
        """We deleted this generated Secret: its DELETED event is ours, not tampering."""
        if len(self.removed) >= REMOVED_MAX:
            self.removed.clear()
        self.removed.add((namespace, name))

    def __post_init__(self) -> None:
        share = self.settings.namespace_share
        concurrency = self.settings.task_concurrency
        self.admission = FairSlots(concurrency, share, headroom=fair_headroom(concurrency))
        self.pod_checks = Coalescer("pods", FairSlots(POD_WORKERS, share))
