"""One schedule for every task: a heap of due times instead of a coroutine per task.

Each active task has exactly one next moment (its earliest renewAt, retireAt, expiresAt
or deadline, all in its status). The scheduler keeps ``(due, key)`` pairs in a heap,
sleeps until the earliest, and runs that task's step, at most ``parallel`` steps at
once and never two for the same task; the step returns the task's next delay (None:
nothing more to do). ``wake`` moves a task to now (a handler changed its status).

The ``parallel`` slots are shared fairly between namespaces (services/fair_slots.py): a
namespace alone may use them all, but while another namespace has a step waiting, freed
slots go round-robin, each namespace capped at ``share`` of them, so a flood of one
tenant's steps never delays another's renewal past its turn.

Memory per task is a heap entry and two dict slots, where a Kopf daemon per task costs
an asyncio task, its frames and Kopf's daemon bookkeeping; a restarted operator loads
every schedule from the task bodies it lists, without a call per task.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentcred import metrics
from agentcred.services.fair_slots import FairSlots, fair_headroom

log = logging.getLogger("agentcred.scheduler")


@dataclass(frozen=True, slots=True)  # one per scheduled task: no __dict__ each
class TaskKey:
    uid: str
    namespace: str
    name: str


Step = Callable[[TaskKey, int], Awaitable[float | None]]  # (key, attempt) -> next delay


class Scheduler:
    def __init__(
        self,
        parallel: int = 64,
        clock: Callable[[], float] = time.monotonic,
        share: float = 0.5,
    ) -> None:
        self._clock = clock
        self._parallel = parallel
        self._share = share
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # uid -> the one due time that counts
        self._keys: dict[str, TaskKey] = {}
        self._attempts: dict[str, int] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._jobs: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._due) + len(self._running - self._due.keys())

    def schedule(self, key: TaskKey, delay: float) -> None:
        """Run ``key``'s step in ``delay`` seconds (replacing any earlier schedule)."""
        if key.uid in self._running:
            self._keys[key.uid] = key
            if delay <= 0:
                self._again.add(key.uid)
            else:
                self._push(key, delay)
            return
        self._keys[key.uid] = key
        self._push(key, delay)

    def wake(self, key: TaskKey) -> None:
        self.schedule(key, 0.0)

    def retry(self, key: TaskKey, delay: float) -> None:
        """Run ``key``'s step in ``delay`` seconds as a retry: an action outside the
        schedule failed (services/task_events.py), so its step counts one attempt more
        (the backoff of its next failure grows)."""
        self._attempts[key.uid] = self._attempts.get(key.uid, 0) + 1
        self.schedule(key, delay)

    def attempts(self, uid: str) -> int:
        """Failed attempts in a row of ``uid``'s step (0: none, or its last one worked)."""
        return self._attempts.get(uid, 0)

    def take(self, uid: str) -> None:
        """Off the heap, as the loop takes a due step (its attempts kept): for tests."""
        self._due.pop(uid, None)

    def forget(self, uid: str) -> None:
        self._due.pop(uid, None)
        self._keys.pop(uid, None)
        self._attempts.pop(uid, None)
        self._again.discard(uid)
        metrics.SCHEDULED.set(len(self))

    def due_in(self, uid: str) -> float | None:
        """Seconds until ``uid``'s step (None: not scheduled); for tests and diagnostics."""
        due = self._due.get(uid)
        return None if due is None else max(0.0, due - self._clock())

    def _push(self, key: TaskKey, delay: float) -> None:
        due = self._clock() + max(0.0, delay)
        self._due[key.uid] = due
        heapq.heappush(self._heap, (due, next(self._seq), key.uid))
        metrics.SCHEDULED.set(len(self))
        self._changed.set()

    async def run(self, step: Step, stopped: asyncio.Event) -> None:
        """Run due steps until ``stopped`` is set."""
        gate = FairSlots(self._parallel, self._share, fair_headroom(self._parallel))
        while not stopped.is_set():
            wait = self._pop_due(step, gate)
            self._changed.clear()
            if wait is None or wait > 0:
                waiters = [asyncio.ensure_future(self._changed.wait())]
                waiters.append(asyncio.ensure_future(stopped.wait()))
                try:
                    await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:  # cancelled too (shutdown): a waiter left pending holds Kopf's exit 5 s
                    for waiter in waiters:
                        waiter.cancel()
            else:
                await asyncio.sleep(0)
        for job in list(self._jobs):
            job.cancel()

    def _pop_due(self, step: Step, gate: FairSlots) -> float | None:
        """Start every due step; seconds until the next one (None: nothing scheduled)."""
        now = self._clock()
        while self._heap:
            due, _, uid = self._heap[0]
            if self._due.get(uid) != due:  # replaced or forgotten
                heapq.heappop(self._heap)
                continue
            if due > now:
                return due - now
            heapq.heappop(self._heap)
            del self._due[uid]
            if uid in self._running:
                self._again.add(uid)
                continue
            self._running.add(uid)
            job = asyncio.create_task(self._run_one(step, gate, uid))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
        return None

    async def _run_one(self, step: Step, gate: FairSlots, uid: str) -> None:
        key = self._keys.get(uid)
        if key is None:
            self._running.discard(uid)
            return
        delay: float | None
        try:
            async with gate.hold(key.namespace):
                delay = await step(key, self._attempts.get(uid, 0))
        except asyncio.CancelledError:
            self._running.discard(uid)
            raise
        except Exception as exc:  # one task's trouble never stops the schedule
            metrics.count_error("scheduler", exc)
            log.exception("scheduled step of task %s/%s failed", key.namespace, key.name)
            delay = -30.0
        self._running.discard(uid)
        self.after(uid, delay)

    def after(self, uid: str, delay: float | None) -> None:
        """What follows a step that returned ``delay`` (the loop's rule; tests replay it)."""
        key = self._keys.get(uid)
        if key is None:
            return
        if uid in self._again:
            self._again.discard(uid)
            self._push(key, 0.0)
            return
        if delay is None:
            if uid not in self._due:
                self.forget(uid)
            return
        self._attempts[uid] = self._attempts.get(uid, 0) + 1 if delay < 0 else 0
        if uid not in self._due or self._due[uid] > self._clock() + abs(delay):
            self._push(key, abs(delay))
