"""Status payloads as the operator writes them (TypedDicts mirror the CRD status schemas),
and a task's credential entries as the services read them (``CredentialEntry``).

Nothing here ever holds a credential value: only lease ids, times and counters.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, TypedDict


class Phase(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    EXPIRED = "Expired"

    @property
    def ended(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.EXPIRED)


class Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class CredentialStatus(TypedDict, total=False):
    name: str
    secretName: str
    backend: str
    leaseId: str
    renewable: bool
    revocable: bool
    issuedAt: str
    expiresAt: str
    renewAt: str
    retireAt: str
    secretResourceVersion: str
    renewals: int
    reissues: int
    state: str


class EntryState(StrEnum):
    """``status.credentials[].state``."""

    ISSUED = "Issued"
    REVOKED = "Revoked"
    EXPIRED = "Expired"  # lapsed before it could be renewed (the task went back to Pending)
    PENDING = "Pending"


_STATES = {state.value: state for state in EntryState}


@dataclasses.dataclass(frozen=True)
class CredentialEntry:
    """One ``status.credentials[]`` entry, parsed: real datetimes, an enum state.

    Field names are the snake_case of the JSON keys (models/parse.json_name), so
    tests/unit/test_models_match_crds.py checks them against the CRD.

    Parsing is lenient, never raising: the status is the operator's own record (only it
    writes the status subresource), and a value it cannot read is treated as unknown
    rather than failing the task or the loop that reads it. A missing or malformed time is
    None (nothing is scheduled from it), an unknown or missing state is None (not Issued:
    the credential is issued again, which is always safe), a string, flag or counter of the
    wrong type is its empty value ("", False, 0), and an item that is not an object with a
    name is dropped (the CRD requires ``name``; it keys the list).

    ``to_json`` writes exactly what the operator always wrote: every key, except the
    times and the state, which are left out while unset. An entry the operator wrote
    (all keys present, times in RFC 3339 with a Z) round-trips unchanged.
    """

    name: str
    secret_name: str = ""
    backend: str = ""
    lease_id: str = ""
    renewable: bool = False
    revocable: bool = False
    issued_at: datetime.datetime | None = None
    expires_at: datetime.datetime | None = None
    renew_at: datetime.datetime | None = None
    retire_at: datetime.datetime | None = None
    secret_resource_version: str = ""
    renewals: int = 0
    reissues: int = 0
    state: EntryState | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CredentialEntry:
        state = raw.get("state")
        return cls(
            name=_text(raw.get("name")),
            secret_name=_text(raw.get("secretName")),
            backend=_text(raw.get("backend")),
            lease_id=_text(raw.get("leaseId")),
            renewable=raw.get("renewable") is True,
            revocable=raw.get("revocable") is True,
            issued_at=parse_timestamp(raw.get("issuedAt")),
            expires_at=parse_timestamp(raw.get("expiresAt")),
            renew_at=parse_timestamp(raw.get("renewAt")),
            retire_at=parse_timestamp(raw.get("retireAt")),
            secret_resource_version=_text(raw.get("secretResourceVersion")),
            renewals=_count(raw.get("renewals")),
            reissues=_count(raw.get("reissues")),
            state=_STATES.get(state) if isinstance(state, str) else None,
        )

    def to_json(self) -> CredentialStatus:
        result = CredentialStatus(
            name=self.name,
            secretName=self.secret_name,
            backend=self.backend,
            leaseId=self.lease_id,
            renewable=self.renewable,
            revocable=self.revocable,
            secretResourceVersion=self.secret_resource_version,
            renewals=self.renewals,
            reissues=self.reissues,
        )
        if self.issued_at is not None:
            result["issuedAt"] = timestamp(self.issued_at)
        if self.expires_at is not None:
            result["expiresAt"] = timestamp(self.expires_at)
        if self.renew_at is not None:
            result["renewAt"] = timestamp(self.renew_at)
        if self.retire_at is not None:
            result["retireAt"] = timestamp(self.retire_at)
        if self.state is not None:
            result["state"] = self.state.value
        return result


def parse_entries(raw: object) -> tuple[CredentialEntry, ...]:
    """``status.credentials`` as entries (leniently: see CredentialEntry)."""
    if not isinstance(raw, list | tuple):
        return ()
    return tuple(
        CredentialEntry.from_json(item)
        for item in raw
        if isinstance(item, Mapping) and item.get("name") and isinstance(item["name"], str)
    )


def entries_json(entries: Iterable[CredentialEntry]) -> list[CredentialStatus]:
    return [entry.to_json() for entry in entries]


def parse_timestamp(value: object) -> datetime.datetime | None:
    """An RFC 3339 time as written in a status (None when absent or unreadable); naive
    times are taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class PodRecord(TypedDict, total=False):
    seen: list[str]
    succeeded: list[str]
    failed: list[str]


class IdentityCredential(TypedDict, total=False):
    name: str
    secretName: str


class IdentityStatus(TypedDict, total=False):
    """``status.identity``: what the operator first acted for (models/identity.py)."""

    serviceAccountName: str
    credentials: list[IdentityCredential]


class ApprovalDecision(TypedDict, total=False):
    approval: str
    backend: str
    approver: str
    decision: str
    reason: str


class ApprovalRecord(TypedDict, total=False):
    """``status.approval``: what the task waits for, or what decided it (models/approval.py)."""

    backends: list[str]
    deadline: str
    decision: str
    generation: int
    decisions: list[ApprovalDecision]


class TaskStatus(TypedDict, total=False):
    phase: str
    reason: str
    message: str
    startTime: str
    completionTime: str
    expiresAt: str
    observedGeneration: int
    renewRequestedAt: str  # the last agentcred.io/renew-requested-at value honoured
    identity: IdentityStatus
    pods: PodRecord
    approval: ApprovalRecord
    credentials: list[CredentialStatus]
    conditions: list[Condition]


class CredentialResourceStatus(TypedDict, total=False):
    observedGeneration: int
    backend: str
    conditions: list[Condition]


def timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with a Z, as Kubernetes writes it."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str,
    *,
    ok: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> Condition:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    result = Condition(
        type=type_, status=status, reason=reason, message=message, lastTransitionTime=timestamp(now)
    )
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def merge_conditions(old: list[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of the same type; keep lastTransitionTime if status is unchanged."""
    merged: list[Condition] = []
    for existing in old:
        if existing.get("type") != new["type"]:
            merged.append(existing)
        elif existing.get("status") == new["status"] and "lastTransitionTime" in existing:
            new = Condition(**{**new, "lastTransitionTime": existing["lastTransitionTime"]})
    merged.append(new)
    return sorted(merged, key=lambda c: c.get("type", ""))
