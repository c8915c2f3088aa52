"""Build AgentTask status payloads (pure): credential entries, phases, conditions.

Nothing here ever holds a credential value: only lease ids, times and counters.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any, cast

from agentcred.backends.base import Capabilities, Issued
from agentcred.models.api_names import ConditionType, Reason
from agentcred.models.status import (
    Condition,
    CredentialEntry,
    EntryState,
    Phase,
    TaskStatus,
    condition,
    entries_json,
    merge_conditions,
    timestamp,
)


def issued_entry(
    *,
    name: str,
    secret_name: str,
    backend: str,
    issued: Issued,
    caps: Capabilities,
    renew_at: datetime.datetime | None,
    secret_version: str,
    previous: CredentialEntry | None = None,
) -> CredentialEntry:
    return CredentialEntry(
        name=name,
        secret_name=secret_name,
        backend=backend,
        lease_id=issued.lease_id,
        renewable=issued.renewable and caps.renewable,
        revocable=caps.revocable,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        renew_at=renew_at,
        secret_resource_version=secret_version,
        renewals=0,
        reissues=previous.reissues + 1 if previous is not None else 0,
        state=EntryState.ISSUED,
    )


def replace_entry(
    entries: Iterable[CredentialEntry], entry: CredentialEntry
) -> tuple[CredentialEntry, ...]:
    """The entries with ``entry`` in place of the one of the same name (or appended)."""
    return (*(e for e in entries if e.name != entry.name), entry)


def nearest_expiry(entries: Iterable[CredentialEntry]) -> str | None:
    """``status.expiresAt``: the earliest expiry of the Issued entries."""
    times = [
        e.expires_at for e in entries if e.state is EntryState.ISSUED and e.expires_at is not None
    ]
    return timestamp(min(times)) if times else None


def with_entries(entries: Iterable[CredentialEntry]) -> dict[str, Any]:
    """The status fields that follow from the entries: ``credentials`` and ``expiresAt``
    (None removes it in a merge patch)."""
    entries = tuple(entries)
    return {"credentials": entries_json(entries), "expiresAt": nearest_expiry(entries)}


def ready(
    old: Mapping[str, Any],
    ok: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> list[Condition]:
    cond = condition(
        ConditionType.READY, ok=ok, reason=reason, message=message, generation=generation, now=now
    )
    return merge_conditions([cast(Condition, dict(c)) for c in old.get("conditions") or []], cond)


def recovered(
    old: Mapping[str, Any], generation: int | None, now: datetime.datetime
) -> list[Condition] | None:
    """Ready back to True on an active task whose Ready says otherwise (a renewal that
    failed and has since succeeded); None when nothing changes."""
    if old.get("phase") != Phase.ACTIVE.value:
        return None
    conditions = old.get("conditions") or []
    if any(c.get("type") == ConditionType.READY and c.get("status") == "True" for c in conditions):
        return None
    return ready(old, True, Reason.CREDENTIALS_ISSUED, "all credentials issued", generation, now)


def pending(old: Mapping[str, Any], generation: int | None, now: datetime.datetime) -> TaskStatus:
    status = TaskStatus(phase=Phase.PENDING.value)
    if not old.get("startTime"):
        status["startTime"] = timestamp(now)
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def active(
    old: Mapping[str, Any],
    entries: Iterable[CredentialEntry],
    generation: int | None,
    now: datetime.datetime,
) -> TaskStatus:
    entries = tuple(entries)
    status = TaskStatus(
        phase=Phase.ACTIVE.value,
        reason=Reason.CREDENTIALS_ISSUED,
        message=f"{len(entries)} credential(s) issued",
        credentials=entries_json(entries),
        conditions=ready(
            old, True, Reason.CREDENTIALS_ISSUED, "all credentials issued", generation, now
        ),
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


def revoked(entries: Iterable[CredentialEntry]) -> tuple[CredentialEntry, ...]:
    """Entries after cleanup: everything still Issued is now Revoked, schedules cleared."""
    return tuple(
        dataclasses.replace(
            entry,
            renew_at=None,
            retire_at=None,
            state=(
                EntryState.REVOKED
                if entry.state in (EntryState.ISSUED, EntryState.PENDING)
                else entry.state
            ),
        )
        for entry in entries
    )


def revocation(
    old: Mapping[str, Any],
    pending: str | None,
    generation: int | None,
    now: datetime.datetime,
    unrevocable: Iterable[str] = (),
) -> list[Condition]:
    """``old``'s conditions with ``Revoked``: True once an ended task holds nothing (every
    session revoked, every generated Secret deleted), False with ``pending`` (what is
    still being retried) until then. ``unrevocable``: credentials whose backend cannot
    revoke them (static reads, STS), named in the message: they lapse at their expiry."""
    lapsing = sorted(unrevocable)
    if pending:
        cond = condition(
            ConditionType.REVOKED,
            ok=False,
            reason=Reason.REVOCATION_PENDING,
            message=pending,
            generation=generation,
            now=now,
        )
    else:
        cond = condition(
            ConditionType.REVOKED,
            ok=True,
            reason=Reason.CREDENTIALS_REVOKED,
            message="every lease revoked and every generated Secret deleted"
            + (
                f"; {', '.join(lapsing)} cannot be revoked by its backend and lapses at its expiry"
                if lapsing
                else ""
            ),
            generation=generation,
            now=now,
        )
    return merge_conditions([cast(Condition, dict(c)) for c in old.get("conditions") or []], cond)
