"""Very short-lived reads shared by concurrent callers (a burst of tasks): one GET per key
per ``LOOKUP_SECONDS``, and concurrent misses wait for the same GET (single flight).

Only for objects whose change may take a moment to apply (an AgentCredential, a
CredentialBackend, a namespace's labels); never for a task or a Secret, which are always
read fresh. A burst of 1,000 tasks on one AgentCredential costs one GET of each, not 1,000.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

LOOKUP_SECONDS = 2.0
MAX_ENTRIES = 4096


class Lookups:
    def __init__(
        self, keep: float = LOOKUP_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep, self._clock = keep, clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[Any]]) -> Any:
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self._keep:
            return cached[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody warns
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(value)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (self._clock(), value)
        return value
