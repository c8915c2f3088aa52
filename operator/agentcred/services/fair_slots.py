"""Slots shared between namespaces: work-conserving, round-robin only while someone waits.

A plain semaphore serves waiters first come, first served: a namespace that creates 500
tasks at once queues 500 waiters, and a task of another namespace created a moment later
waits behind all of them. ``FairSlots`` keeps one FIFO of waiters per key (a namespace)
instead and, when a slot frees, hands it to the next waiting key in turn:

- a key alone may take every slot (an idle slot is never kept back: one tenant's burst
  runs at full speed while nobody else wants a turn);
- while other keys wait, a freed slot goes round-robin across the waiting keys, a key
  already holding ``share`` of the slots or more served only when no waiting key holds
  less (so a key that filled every slot while alone gives way as its calls finish, and
  no slot stays idle while anyone waits);
- within a key, waiters are served in arrival order.

Pure asyncio, no I/O: a slot is handed over (counted as held) at the moment it is
granted, so a freed slot never goes to a newcomer that skips the queue, and a waiter
cancelled after its grant passes the slot on instead of losing it.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    def __init__(self, capacity: int, share: float = 1.0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.capacity = capacity
        # What one key may hold while others wait (at least one slot each).
        self.cap = max(1, math.floor(capacity * share))
        self._free = capacity
        self._held: dict[str, int] = {}
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._turns: OrderedDict[str, None] = OrderedDict()  # waiting keys, next turn first

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for ``key`` (a namespace) while the block runs."""
        await self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    async def acquire(self, key: str) -> None:
        if self._free > 0 and not self._waiters:
            self._take(key)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, deque()).append(waiter)
        self._turns.setdefault(key)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(key)  # granted, then cancelled before it ran: pass it on
            else:
                self._drop(key, waiter)
            raise

    def release(self, key: str) -> None:
        held = self._held.get(key, 0)
        if held <= 0:
            raise RuntimeError(f"release of a slot {key!r} does not hold")
        if held == 1:
            del self._held[key]
        else:
            self._held[key] = held - 1
        self._free += 1
        self._grant()

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiters.values())

    @property
    def idle(self) -> bool:
        """Nothing held and nobody waiting (a keyed map of these may forget it)."""
        return self._free == self.capacity and not self._waiters

    def _take(self, key: str) -> None:
        self._free -= 1
        self._held[key] = self._held.get(key, 0) + 1

    def _grant(self) -> None:
        while self._free > 0 and self._turns:
            key = self._next()
            queue = self._waiters[key]
            waiter = queue.popleft()
            if queue:
                self._turns.move_to_end(key)  # its next waiter waits for its next turn
            else:
                del self._waiters[key]
                del self._turns[key]
            if waiter.done():  # cancelled, its task not yet resumed to take itself out
                continue
            self._take(key)
            waiter.set_result(None)

    def _next(self) -> str:
        """The first waiting key in turn order that holds less than its share; if every
        waiting key holds its share, the first in turn order (never leave a slot idle)."""
        for key in self._turns:
            if self._held.get(key, 0) < self.cap:
                return key
        return next(iter(self._turns))

    def _drop(self, key: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiters.get(key)
        if queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        if not queue:
            del self._waiters[key]
            del self._turns[key]
