"""Slots shared between namespaces: work-conserving, round-robin only while someone waits.

A plain semaphore serves waiters first come, first served: a namespace that creates 500
tasks at once queues 500 waiters, and a task of another namespace created a moment later
waits behind all of them. ``FairSlots`` keeps one FIFO of waiters per key (a namespace)
instead and, when a slot frees, hands it to the next waiting key in turn:

- a key alone may take every slot (an idle slot is never kept back: one tenant's burst
  runs at full speed while nobody else wants a turn);
- while other keys wait, freed slots go round-robin across the waiting keys (to the
  one served least recently), skipping a key that already holds ``share`` of the slots
  unless every waiting key does: a key that filled every slot while alone gives way as
  its calls finish, until the others have their share, and no slot stays idle while
  anyone waits (``share`` 1: plain round-robin);
- within a key, waiters are served in arrival order;
- ``headroom`` slots are kept for keys that hold none: a key that already holds a slot
  takes another only while more than ``headroom`` are free. A slot held for a long time
  (a task handler's whole issue, seconds when the API server is busy) frees late; without
  headroom a newcomer would wait for the first of a burst's slots to free, all of which
  started together and end together. With it, the newcomer starts at once.

Pure asyncio, no I/O: a slot is handed over (counted as held) at the moment it is
granted, so a freed slot never goes to a newcomer that skips the queue, and a waiter
cancelled after its grant passes the slot on instead of losing it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


def fair_headroom(capacity: int) -> int:
    """The slots kept for newcomers out of ``capacity``: an eighth (none below eight)."""
    return capacity // 8


class FairSlots:
    def __init__(self, capacity: int, share: float = 1.0, headroom: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if not 0 <= headroom < capacity:
            raise ValueError(f"headroom must be in [0, capacity), got {headroom}")
        self.capacity = capacity
        self.headroom = headroom
        # What one key may hold while others wait (at least one slot each).
        self.cap = max(1, math.floor(capacity * share))
        self._free = capacity
        self._held: dict[str, int] = {}
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._served: dict[str, int] = {}  # when each busy key last got a slot
        self._clock = itertools.count()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for ``key`` (a namespace) while the block runs."""
        await self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    async def acquire(self, key: str) -> None:
        if not self._waiters and self._may_take(key):
            self._take(key)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, deque()).append(waiter)
        self._grant()  # a newcomer may start at once though others wait (headroom)
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
            if key not in self._waiters:
                self._served.pop(key, None)
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
        self._served[key] = next(self._clock)

    def _may_take(self, key: str) -> bool:
        return self._free > (self.headroom if key in self._held else 0)

    def _grant(self) -> None:
        while self._free > 0 and self._waiters:
            key = self._next()
            if key is None:
                return  # the free slots are the headroom, and every waiting key holds one
            queue = self._waiters[key]
            waiter = queue.popleft()
            if not queue:
                del self._waiters[key]
            if waiter.done():  # cancelled, its task not yet resumed to take itself out
                self._forget_if_idle(key)
                continue
            self._take(key)
            waiter.set_result(None)

    def _next(self) -> str | None:
        """The waiting key whose turn it is, among those that may take a slot now: keys
        under their share before keys at it, then the one served least recently (never
        served: first)."""

        def turn(key: str) -> tuple[bool, int]:
            return self._held.get(key, 0) >= self.cap, self._served.get(key, -1)

        eligible = [key for key in self._waiters if self._may_take(key)]
        return min(eligible, key=turn) if eligible else None

    def _drop(self, key: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiters.get(key)
        if queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        if not queue:
            del self._waiters[key]
            self._forget_if_idle(key)

    def _forget_if_idle(self, key: str) -> None:
        if key not in self._held and key not in self._waiters:
            self._served.pop(key, None)
