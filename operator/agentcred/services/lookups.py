"""The read cache behind resolve: AgentCredentials, CredentialBackends and namespace labels,
kept from the watch, so that starting a task costs no GET of any of them.

Issue 22: each of these reads was a GET per key every 2 s; a burst on a quiet cluster
paid three per task. Now the watch keeps the cache (``observe``, fed by Kopf's event
handlers through services/cluster_view.py) and ``get`` answers from it; only a miss
costs one GET (single flight: concurrent misses of one key wait for the same GET).

**Trust model** (docs/security.md, "What the operator believes about the cluster"): the
cache must never let a tenant get what the platform's *current* objects deny for longer
than watch latency. So:

* Only the watch keeps an entry for good. An edit or a deletion replaces or drops it the
  moment its event arrives, whatever was cached before (a backend edited to drop a
  namespace refuses the next issue once the watch delivered the edit).
* A GET's answer (a miss; "it does not exist" included) is kept only ``LOOKUP_SECONDS``
  (2 s, the old lookups' bound), and not at all when an event for its key arrived while
  the GET was on its way (that answer may be older than the event); an event replaces it
  at once. So were a watch not running at all (no RBAC for it), nothing is trusted
  longer than before issue 22.
* A re-list (Kopf lists again after a watch broke for long: 410 Gone) reports no
  deletions: Kopf delivers the objects that still exist as events of type None and says
  nothing about the others. So the first listing event of a kind after a quiet spell of
  ``LISTING_GAP`` drops every entry of that kind (``listed``); the listing refills them,
  and a lookup in between misses and reads. An object deleted while the watch was
  broken is therefore forgotten when the watch comes back.

What stays the same: the scheduled steps resolve again through the same cache (a refresh
of a credential the platform no longer allows is refused and postponed until the lease
lapses), and services/credential_recheck.py re-checks every AgentCredential's Ready
condition from a fresh LIST (its backend and namespace through this cache).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

LOOKUP_SECONDS = 2.0  # how long a GET's answer (a miss) is trusted
LISTING_GAP = 10.0  # listing events further apart than this belong to different listings
PURGE_AT = 4096  # entries at which a GET's expired answers are dropped (none is used past 2 s)

# A key is a tuple whose first item names its kind (services/cluster_view.py).
Key = tuple[Hashable, ...]


class Lookups:
    def __init__(
        self, keep: float = LOOKUP_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep, self._clock = keep, clock
        # key -> (value, until): until None for what the watch delivered (kept until
        # its next event), a moment for a GET's answer
        self._entries: dict[Key, tuple[Any, float | None]] = {}
        self._inflight: dict[Key, asyncio.Future[Any]] = {}
        self._overtaken: set[Key] = set()  # in-flight GETs an event made stale
        self._listed: dict[Hashable, float] = {}  # kind -> when its last listing event came
        self._purge_at = PURGE_AT

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Key, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value of ``key``; on a miss ``fetch()``'s (None: it does not exist)."""
        cached = self._entries.get(key)
        if cached is not None:
            value, until = cached
            if until is None or self._clock() < until:
                return value
            del self._entries[key]
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
            overtaken = key in self._overtaken
            self._overtaken.discard(key)
        future.set_result(value)
        if not overtaken:
            self._keep_answer(key, value)
        return value

    def _keep_answer(self, key: Key, value: Any) -> None:
        now = self._clock()
        if len(self._entries) >= self._purge_at:
            kept = {k: e for k, e in self._entries.items() if e[1] is None or e[1] > now}
            self._entries = kept
            self._purge_at = max(PURGE_AT, 2 * len(kept))
        self._entries[key] = (value, now + self._keep)

    def observe(self, key: Key, value: Any) -> None:
        """The watch's word on ``key``: its value now, or None when it is gone."""
        if key in self._inflight:
            self._overtaken.add(key)
        if value is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = (value, None)

    def listed(self, kind: Hashable) -> None:
        """An object of ``kind`` came from a listing (Kopf's first, or a re-list after the
        watch broke): deletions since the last listing were never reported, so the first
        listing event after a quiet spell drops every entry of the kind."""
        now = self._clock()
        last = self._listed.get(kind)
        self._listed[kind] = now
        if last is not None and now - last <= LISTING_GAP:
            return  # the same listing
        for key in [k for k in self._entries if k[0] == kind]:
            del self._entries[key]
        self._overtaken.update(k for k in self._inflight if k[0] == kind)
