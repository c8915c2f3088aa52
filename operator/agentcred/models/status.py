"""Status payloads as the operator writes them (TypedDicts mirror the CRD status schemas).

Nothing here ever holds a credential value: only lease ids, times and counters.
"""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import TypedDict


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


class PodRecord(TypedDict, total=False):
    seen: list[str]
    succeeded: list[str]
    failed: list[str]


class TaskStatus(TypedDict, total=False):
    phase: str
    reason: str
    message: str
    startTime: str
    completionTime: str
    expiresAt: str
    observedGeneration: int
    pods: PodRecord
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
