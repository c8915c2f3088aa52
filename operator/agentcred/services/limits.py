"""Fair shares of backend capacity: bounded concurrent calls per backend address and per
namespace, on top of each backend kind's bounded thread pool.

Without them one tarpitting backend (a listener that never answers) or one busy tenant
could hold every thread of a kind's pool until its timeouts fire, and everyone's
renewals and revocations would wait behind it. A call takes a target slot, then a
namespace slot (always in that order, so slots never deadlock): callers queued behind
a stuck backend hold nothing else, in particular no slot of their namespace that a
call to a healthy backend needs.

A target's slots are :class:`~agentcred.services.fair_slots.FairSlots` keyed by
namespace: one namespace alone may use all of a shared Vault's slots, but while another
namespace waits for that Vault the freed slots go round-robin, each namespace capped
at ``share`` of them, so a flood in one namespace never queues another's calls behind
its own. An idle key's slots are forgotten, so the maps stay as small as what is in
flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from agentcred.services.fair_slots import FairSlots, fair_headroom


@dataclass
class _Keyed:
    size: int
    _slots: dict[str, tuple[asyncio.Semaphore, int]] = field(default_factory=dict)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        semaphore, users = self._slots.get(key, (asyncio.Semaphore(self.size), 0))
        self._slots[key] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._slots[key]
            if users <= 1:
                del self._slots[key]
            else:
                self._slots[key] = (semaphore, users - 1)

    def __len__(self) -> int:
        return len(self._slots)


@dataclass
class _FairKeyed:
    """One FairSlots per target, shared fairly between the namespaces calling it."""

    size: int
    share: float
    _slots: dict[str, FairSlots] = field(default_factory=dict)

    @asynccontextmanager
    async def hold(self, target: str, namespace: str) -> AsyncIterator[None]:
        slots = self._slots.get(target)
        if slots is None:
            slots = self._slots[target] = FairSlots(self.size, self.share, fair_headroom(self.size))
        try:
            async with slots.hold(namespace):
                yield
        finally:
            if slots.idle and self._slots.get(target) is slots:
                del self._slots[target]

    def __len__(self) -> int:
        return len(self._slots)


class Limits:
    def __init__(self, per_target: int = 16, per_namespace: int = 16, share: float = 0.5) -> None:
        self._targets = _FairKeyed(per_target, share)
        self._namespaces = _Keyed(per_namespace)

    @asynccontextmanager
    async def slot(self, namespace: str, target: str) -> AsyncIterator[None]:
        """Hold a call slot for ``namespace`` and backend ``target`` (its address)."""
        async with self._targets.hold(target, namespace), self._namespaces.hold(namespace):
            yield

    @property
    def keys(self) -> int:
        return len(self._targets) + len(self._namespaces)
