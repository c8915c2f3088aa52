"""Time arithmetic for one lease or one retry: when to renew (at ``renewalPercent`` of
its life, with jitter), when to re-read a shared static secret, the TTL to ask for,
how long to back off. (``due.py`` picks a task's next moment from its status;
``scheduler.py`` runs the tasks at those moments.)

Pure functions of times and a random source, so the schedule is unit tested without
a clock. Jitter only moves renewals earlier (never past the planned share) so that
many leases issued together do not renew together, and never later than a safety
margin before expiry.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import random
from collections.abc import Iterable

JITTER_SHARE = 0.1  # up to 10 % of the lease life earlier than planned
MIN_MARGIN = datetime.timedelta(seconds=2)  # always act at least this long before expiry
SHARED_MARGIN = 0.5  # seconds: a shared static read expires this long before its grid point


def renew_at(
    issued_at: datetime.datetime,
    expires_at: datetime.datetime,
    percent: int,
    rng: random.Random,
) -> datetime.datetime:
    """The moment to renew a lease that runs from ``issued_at`` to ``expires_at``."""
    life = expires_at - issued_at
    planned = issued_at + life * (percent / 100)
    jittered = planned - life * (JITTER_SHARE * rng.random())
    latest = expires_at - max(MIN_MARGIN, life * 0.05)
    return max(issued_at, min(jittered, latest))


def shared_refresh_point(
    now: datetime.datetime, interval: datetime.timedelta, key: str
) -> datetime.datetime:
    """The next point on the refresh grid of a static secret shared under ``key`` (every
    ``interval``, at a phase that comes from the key) at least ``SHARED_MARGIN`` seconds
    after ``now``: a read is kept until ``SHARED_MARGIN`` before the point, so that there
    is never a moment when a read would be kept for nothing."""
    period = interval.total_seconds()
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    phase = (digest % 1_000_000) / 1_000_000 * period
    ticks = math.floor((now.timestamp() + SHARED_MARGIN - phase) / period) + 1
    return datetime.datetime.fromtimestamp(phase + ticks * period, datetime.UTC)


def shared_refresh_at(
    now: datetime.datetime, interval: datetime.timedelta, key: str, rng: random.Random
) -> datetime.datetime:
    """Next re-read of a static secret that tasks may share under ``key``.

    Every task reading the same secret as the same identity refreshes just after the
    same grid point, whenever it started; a read is kept until the next grid point
    (services/issuance._read_static), so the first refresh after a point reads afresh
    and every other one, however long the operator takes to get through them, is served
    that read: N tasks cost one backend read per refresh. Up to 10 % jitter spreads
    their status writes; a rotation reaches every task within 1.1 intervals."""
    return shared_refresh_point(now, interval, key) + interval * (JITTER_SHARE * rng.random())


def capped_ttl(
    wanted: datetime.timedelta,
    now: datetime.datetime,
    deadline: datetime.datetime | None,
) -> datetime.timedelta:
    """The TTL to request: the credential's ttl, but never past the task's deadline."""
    if deadline is None:
        return wanted
    remaining = deadline - now
    return max(datetime.timedelta(seconds=1), min(wanted, remaining))


def backoff(attempt: int, rng: random.Random, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter: seconds to wait before retry ``attempt`` (0-based).

    Capped at a minute by default: a task waiting for a backend that came back should
    not sleep for long, and the jitter still spreads a thundering herd.
    """
    ceiling = min(cap, base * float(2 ** min(attempt, 20)))
    return max(base / 2, ceiling * rng.random())


def earliest(moments: Iterable[datetime.datetime | None]) -> datetime.datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None
