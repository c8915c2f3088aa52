"""One backend read per refresh for every task that shares a static secret.

Static secrets (Vault KV, AWS Secrets Manager, GCP Secret Manager, Azure Key Vault)
are the same for every task that reads them with the same identity, so concurrent
and repeated reads are coalesced: a single in-flight read per key (single flight),
and its result kept until just before the next point of the secret's refresh grid
(``timing.shared_refresh_point``: every interval, at a phase that comes from the
key). Every task sharing a key refreshes just after the same grid point
(``timing.shared_refresh_at``), so the first refresh after a point reads afresh and
the rest are served it, however long the operator takes to get through them: N tasks
cost one read per refresh, and a rotation reaches every task within 1.1 intervals.

The key is the backend block plus the reading identity and the namespace, so two
tenants never share a read that only one of them is allowed. Values live in memory
only for that short window and are never logged.

A read made counts in ``agentcred_backend_calls_total`` (the backend wrapper counts what
reaches the backend); a read served from the kept result or joined while in flight
counts in ``agentcred_backend_cache_hits_total`` instead, never in both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agentcred import metrics
from agentcred.backends.base import Issued

MAX_ENTRIES = 10_000
Key = str


def read_key(namespace: str, service_account: str, backend: str, block: Mapping[str, Any]) -> Key:
    """Who reads what: namespace, the identity that authenticates, and the backend block."""
    return json.dumps([namespace, service_account, backend, block], sort_keys=True, default=str)


class StaticReads:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[float, Issued]] = OrderedDict()
        self._inflight: dict[Key, tuple[float, asyncio.Future[Issued]]] = {}  # until, read
        self.backend_reads = 0  # reads made (fetch called)
        self.hits = 0  # reads served by another's: kept, or joined in flight

    async def read(
        self,
        key: Key,
        keep_seconds: float,
        fetch: Callable[[], Awaitable[Issued]],
        *,
        backend: str,
    ) -> Issued:
        """The value of ``key``: kept, joined while another read of it runs, or read now
        with ``fetch`` (and kept ``keep_seconds`` from now). ``backend``: its kind, for the
        cache-hit metric.

        The window is counted from when the read is asked, not from when the backend
        answered: the caller sets it to end just before the next refresh point, and a slow
        read (a login first, a loaded backend) must not carry a value past that point, or
        the refresh due there would be served the value from before it (a rotation would
        then wait another interval). For the same reason a read still running whose window
        has already ended is not joined: the caller reads afresh."""
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            self._entries.move_to_end(key)
            self._hit(backend)
            return cached[1]
        running = self._inflight.get(key)
        if running is not None and running[0] > now:
            self._hit(backend)
            return await asyncio.shield(running[1])
        until = now + keep_seconds
        future: asyncio.Future[Issued] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (until, future)
        try:
            self.backend_reads += 1
            issued = await fetch()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(key, (0.0, None))[1] is future:
                del self._inflight[key]  # a later read of the key may have taken the slot
        future.set_result(issued)
        if until > self._clock() and until >= self._entries.get(key, (0.0, None))[0]:
            self._store(key, until, issued)
        return issued

    def _hit(self, backend: str) -> None:
        self.hits += 1
        metrics.BACKEND_CACHE_HITS.labels(backend, "issue").inc()

    def _store(self, key: Key, until: float, issued: Issued) -> None:
        self._entries[key] = (until, issued)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def forget(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
