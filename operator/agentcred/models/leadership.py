"""Leader election on a ``coordination.k8s.io/v1`` Lease: the record and the pure decisions.

Two operator replicas run side by side (``replicas: 2`` in the Deployment); only the one
holding the Lease runs the Kopf handlers. This module decides, without any I/O, what a
replica should do with the Lease it just read, following client-go's leaderelection
package (what controller-runtime and so most operators use):

* the Lease is missing: create it, holding it;
* we hold it: renew it (same ``acquireTime``, same ``leaseTransitions``);
* nobody holds it (released on a clean shutdown) or its holder let it expire: take it over
  (``leaseTransitions`` + 1, new ``acquireTime``);
* someone else holds it and it has not expired: wait.

Expiry is judged by the *local* clock from the moment this replica last saw the record
change (``observed_at``), plus the holder's ``leaseDurationSeconds``: never by comparing
the holder's ``renewTime`` with our clock, so clock skew between nodes cannot make two
replicas leaders at once. The API server's optimistic concurrency (``resourceVersion``)
decides races between two replicas taking over at the same moment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime, as the API server writes it


class LeadershipAction(enum.Enum):
    CREATE = "create"
    RENEW = "renew"
    TAKE = "take"
    WAIT = "wait"


@dataclass(frozen=True)
class LeadershipLease:
    """The fields of a Lease's spec that leadership uses, and the version it was read at."""

    holder: str | None
    duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str = ""

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> LeadershipLease:
        spec = body.get("spec") or {}
        meta = body.get("metadata") or {}
        return cls(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_microtime(spec.get("acquireTime")),
            renew_time=parse_microtime(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(meta.get("resourceVersion") or ""),
        )

    def spec(self) -> dict[str, Any]:
        """The Lease ``spec`` to write. An empty holder is written as ``null`` (released)."""
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": format_microtime(self.acquire_time),
            "renewTime": format_microtime(self.renew_time),
            "leaseTransitions": self.transitions,
        }

    def same_as(self, other: LeadershipLease | None) -> bool:
        """True if ``other`` is this record unchanged (the holder has not renewed since)."""
        return other is not None and (
            self.resource_version == other.resource_version
            if self.resource_version and other.resource_version
            else self.spec() == other.spec()
        )


def parse_microtime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    for fmt in (MICROTIME, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def format_microtime(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(MICROTIME) if value is not None else None


def decide(
    me: str,
    record: LeadershipLease | None,
    *,
    observed_at: float | None,
    now: float,
) -> LeadershipAction:
    """What replica ``me`` does with the Lease as read.

    ``observed_at`` and ``now`` are readings of one monotonic clock: ``observed_at`` is
    when this replica first saw ``record`` in its current version (None: just now).
    """
    if record is None:
        return LeadershipAction.CREATE
    if record.holder == me:
        return LeadershipAction.RENEW
    if not record.holder:
        return LeadershipAction.TAKE
    seen = now if observed_at is None else observed_at
    if now >= seen + record.duration_seconds:
        return LeadershipAction.TAKE
    return LeadershipAction.WAIT


def expires_in(record: LeadershipLease, *, observed_at: float, now: float) -> float:
    """Seconds until ``record`` (held by someone else) expires by our clock; 0 if it has."""
    return max(0.0, observed_at + record.duration_seconds - now)


def claimed(
    me: str,
    record: LeadershipLease | None,
    action: LeadershipAction,
    *,
    duration_seconds: int,
    wall_now: datetime,
) -> LeadershipLease:
    """The record to write for ``action`` (CREATE, RENEW or TAKE): ``me`` holding it now."""
    if action is LeadershipAction.WAIT:
        raise ValueError("nothing to write while another replica holds the lease")
    if record is None or action is LeadershipAction.CREATE:
        return LeadershipLease(
            holder=me,
            duration_seconds=duration_seconds,
            acquire_time=wall_now,
            renew_time=wall_now,
            transitions=0,
        )
    if action is LeadershipAction.RENEW:
        return replace(
            record,
            duration_seconds=duration_seconds,
            renew_time=wall_now,
            acquire_time=record.acquire_time or wall_now,
        )
    return replace(
        record,
        holder=me,
        duration_seconds=duration_seconds,
        acquire_time=wall_now,
        renew_time=wall_now,
        transitions=record.transitions + 1,
    )


def released(record: LeadershipLease, *, wall_now: datetime) -> LeadershipLease:
    """The record a leader writes on a clean shutdown: nobody holds it, a standby may take it
    at once (controller-runtime's ``LeaderElectionReleaseOnCancel``)."""
    return replace(record, holder=None, duration_seconds=1, renew_time=wall_now)


def renewal_lost(
    *, last_renewed: float, now: float, renew_deadline: float, holder_now: str | None, me: str
) -> bool:
    """A leader has lost the lease when someone else holds it, or when it could not renew
    for ``renew_deadline`` seconds (it must then assume a standby has taken over)."""
    if holder_now is not None and holder_now != me:
        return True
    return now - last_renewed >= renew_deadline
