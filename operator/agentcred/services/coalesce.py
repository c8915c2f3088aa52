"""Run follow-up work per key off the loop that noticed it, at most one at a time per key.

The Secret watch serves every tenant: if it restored a tampered Secret inline, one slow
backend would hold up drift repair everywhere. Instead the watch submits a job per
Secret and goes on; a job submitted while the same key's job runs replaces any waiting
one and runs once after it (bursts coalesce), and a failing job is logged and counted,
never propagated into the watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

from agentcred import metrics

log = logging.getLogger("agentcred.coalesce")
Job = Callable[[], Awaitable[None]]


class Coalescer:
    def __init__(self, loop_name: str) -> None:
        self.loop_name = loop_name
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._waiting: dict[Hashable, Job] = {}

    def submit(self, key: Hashable, job: Job) -> None:
        if key in self._running:
            self._waiting[key] = job
            return
        self._running[key] = asyncio.create_task(self._run(key, job))

    @property
    def pending(self) -> int:
        return len(self._running)

    async def _run(self, key: Hashable, job: Job | None) -> None:
        try:
            while job is not None:
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
