"""Run follow-up work per key off the loop that noticed it, at most one at a time per key.

The Secret watch serves every tenant: if it restored a tampered Secret inline, one slow
backend would hold up drift repair everywhere. Instead the watch submits a job per
Secret and goes on; a job submitted while the same key's job runs replaces any waiting
one and runs once after it (bursts coalesce), and a failing job is logged and counted,
never propagated into the watch.

With ``slots`` (the pod watch), jobs also wait for one of a bounded number of slots,
shared fairly between their groups (namespaces, see services/fair_slots.py): a job
still waiting for its slot takes the newest job submitted for its key, so a flood of
events for one task costs one run, and one namespace's flood cannot queue another
namespace's jobs behind all of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

from agentcred import metrics
from agentcred.services.fair_slots import FairSlots

log = logging.getLogger("agentcred.coalesce")
Job = Callable[[], Awaitable[None]]


class Coalescer:
    def __init__(self, loop_name: str, slots: FairSlots | None = None) -> None:
        self.loop_name = loop_name
        self._slots = slots
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._waiting: dict[Hashable, Job] = {}

    def submit(self, key: Hashable, job: Job, group: str = "") -> None:
        """Run ``job`` for ``key`` (``group``: whose turn it takes when slots are shared)."""
        if key in self._running:
            self._waiting[key] = job
            return
        self._running[key] = asyncio.create_task(self._run(key, job, group))

    @property
    def pending(self) -> int:
        return len(self._running)

    @contextlib.asynccontextmanager
    async def _slot(self, group: str) -> AsyncIterator[None]:
        if self._slots is None:
            yield
            return
        async with self._slots.hold(group):
            yield

    async def _run(self, key: Hashable, job: Job | None, group: str) -> None:
        try:
            while job is not None:
                async with self._slot(group):
                    if self._slots is not None:  # the newest, if more came while queued
                        job = self._waiting.pop(key, job)
                    try:
                        await job()
                    except Exception as exc:
                        metrics.count_error(self.loop_name, exc)
                        log.exception("%s: job for %s failed", self.loop_name, key)
                job = self._waiting.pop(key, None)
        finally:
            self._running.pop(key, None)

    async def drain(self) -> None:
        """Wait for every job submitted so far (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
