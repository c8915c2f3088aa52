"""Build AgentTask status payloads (pure): credential entries, phases, conditions.

Nothing here ever holds a credential value: only lease ids, times and counters.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, cast

from agentcred.backends.base import Capabilities, Issued
from agentcred.models.status import (
    Condition,
    CredentialStatus,
    Phase,
    TaskStatus,
    condition,
    merge_conditions,
    timestamp,
)

ISSUED, REVOKED, EXPIRED, PENDING = "Issued", "Revoked", "Expired", "Pending"


def issued_entry(
    *,
    name: str,
    secret_name: str,
    backend: str,
    issued: Issued,
    caps: Capabilities,
    renew_at: datetime.datetime | None,
    secret_version: str,
    previous: Mapping[str, Any] | None = None,
) -> CredentialStatus:
    entry = CredentialStatus(
        name=name,
        secretName=secret_name,
        backend=backend,
        leaseId=issued.lease_id,
        renewable=issued.renewable and caps.renewable,
        revocable=caps.revocable,
        issuedAt=timestamp(issued.issued_at),
        renewals=0,
        reissues=int((previous or {}).get("reissues", -1)) + 1 if previous else 0,
        state=ISSUED,
        secretResourceVersion=secret_version,
    )
    if issued.expires_at is not None:
        entry["expiresAt"] = timestamp(issued.expires_at)
    if renew_at is not None:
        entry["renewAt"] = timestamp(renew_at)
    return entry


def replace_entry(
    entries: Iterable[CredentialStatus], entry: CredentialStatus
) -> list[CredentialStatus]:
    """The list with ``entry`` in place of the one of the same name (or appended)."""
    result = [e for e in entries if e.get("name") != entry.get("name")]
    result.append(entry)
    return result


def nearest_expiry(entries: Iterable[CredentialStatus]) -> str | None:
    times = [e["expiresAt"] for e in entries if e.get("state") == ISSUED and e.get("expiresAt")]
    return min(times) if times else None


def ready(
    old: Mapping[str, Any],
    ok: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> list[Condition]:
    cond = condition("Ready", ok=ok, reason=reason, message=message, generation=generation, now=now)
    return merge_conditions([cast(Condition, dict(c)) for c in old.get("conditions") or []], cond)


def pending(old: Mapping[str, Any], generation: int | None, now: datetime.datetime) -> TaskStatus:
    status = TaskStatus(phase=Phase.PENDING.value)
    if not old.get("startTime"):
        status["startTime"] = timestamp(now)
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def active(
    old: Mapping[str, Any],
    entries: list[CredentialStatus],
    generation: int | None,
    now: datetime.datetime,
) -> TaskStatus:
    status = TaskStatus(
        phase=Phase.ACTIVE.value,
        reason="CredentialsIssued",
        message=f"{len(entries)} credential(s) issued",
        credentials=entries,
        conditions=ready(old, True, "CredentialsIssued", "all credentials issued", generation, now),
    )
    expiry = nearest_expiry(entries)
    if expiry:
        status["expiresAt"] = expiry
    return status


def ended(
    old: Mapping[str, Any],
    phase: Phase,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> TaskStatus:
    return TaskStatus(
        phase=phase.value,
        reason=reason,
        message=message,
        completionTime=old.get("completionTime") or timestamp(now),
        conditions=ready(old, False, reason, message, generation, now),
    )


def revoked(entries: Iterable[CredentialStatus]) -> list[CredentialStatus]:
    """Entries after cleanup: everything still Issued is now Revoked, schedules cleared."""
    result = []
    for entry in entries:
        done = cast(
            CredentialStatus, {k: v for k, v in entry.items() if k not in ("renewAt", "retireAt")}
        )
        if done.get("state") in (ISSUED, PENDING):
            done["state"] = REVOKED
        result.append(done)
    return result
