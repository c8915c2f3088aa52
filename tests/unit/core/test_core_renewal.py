"""A running task's scheduled steps: renew, re-issue, refresh, retire, postpone, expire
(services/maintenance.py), each at its due time on the fake clock, with the exact API
and backend calls and the status they leave."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from agentcred.backends.base import BackendUnavailable
from agentcred.models.api_names import Reason
from support.harness import Harness, RenewableLease, play
from support.harness.backends import FakeBackend
from support.harness.calls import (
    EVENT,
    GET_SECRET,
    GET_TASK,
    PATCH_SECRET,
    PATCH_STATUS,
    RESOLVE,
    TOKEN,
    Short,
)
from support.harness.objects import agent_task, world
from support.harness.store import Body

# Every step reads the task once, under its lock; having acted, it learns the next due
# time from the status it wrote (no step after it to read the task again).
STEP: list[Short] = [GET_TASK]
AGAIN: list[Short] = []
# A re-issue (after the records' read): a fresh login recorded under "<cred>.next" (one
# patch at the version read), the Secret patched at the version we wrote, the records
# rotated as the issue left them (no read again: one patch), CredentialReissued, status.
REISSUE = [TOKEN, PATCH_SECRET, PATCH_SECRET, PATCH_SECRET]
# Retiring the overlapped credential: read the records, CredentialRevoked, drop it.
RETIRE = [GET_SECRET, EVENT, PATCH_SECRET, PATCH_STATUS]


@dataclass(frozen=True)
class Row:
    id: str
    objects: list[Body]
    calls: list[Short]
    backend_calls: list[tuple[str, str]]
    entry: dict[str, object]  # fields of the credential's status entry after the step
    records: list[str]
    backends: dict[str, FakeBackend] | None = None
    prepare: Callable[[Harness], None] = lambda h: None


def _rotate(h: Harness) -> None:
    h.backends["awsSecretsManager"].rotate("v2")  # type: ignore[attr-defined]


def _renew_down_once(h: Harness) -> None:
    h.backends["vault"].fail("renew", BackendUnavailable("connection refused"))


ROWS = [
    Row(
        "renew in place: the Secret's expiry annotation and the entry follow",
        world(),
        # the records; the annotation patched at the version we wrote (no read first)
        [*STEP, *RESOLVE, GET_SECRET, PATCH_SECRET, EVENT, PATCH_STATUS, *AGAIN],
        [("renew", "lease-2")],
        {"leaseId": "lease-2", "renewals": 1, "expiresAt": "2026-06-01T12:16:22Z"},
        ["db"],
    ),
    Row(
        "re-issue an unrenewable lease: the old one kept until retireAt",
        world(request="awsSts"),
        [*STEP, *RESOLVE, GET_SECRET, *REISSUE, EVENT, PATCH_STATUS, *AGAIN],
        [("login", "db"), ("issue", "db")],
        {"leaseId": "lease-4", "reissues": 1, "retireAt": "2026-06-01T12:06:52Z"},
        ["db", "db.previous"],
    ),
    Row(
        "re-issue a lease whose renewal was capped (its max TTL reached)",
        world(),
        [*STEP, *RESOLVE, GET_SECRET, GET_SECRET, *REISSUE, EVENT, PATCH_STATUS, *AGAIN],
        [("renew", "lease-2"), ("login", "db"), ("issue", "db")],
        {"leaseId": "lease-4", "reissues": 1, "retireAt": "2026-06-01T12:06:52Z"},
        ["db", "db.previous"],
        backends={"vault": RenewableLease(max_life=datetime.timedelta(minutes=12))},
    ),
    Row(
        "refresh a static secret: re-read, the Secret replaced, no Event",
        world(request="awsSecretsManager"),
        [*STEP, *RESOLVE, PATCH_SECRET, PATCH_STATUS, *AGAIN],
        [("issue", "db")],
        {"leaseId": "version-v2", "renewals": 1, "reissues": 0},
        [],
        prepare=_rotate,
    ),
    Row(
        "renewal fails for now: retried within seconds, never past expiry",
        world(),
        # RenewFailed, then the postponed entry and Ready=False in one patch
        [*STEP, *RESOLVE, GET_SECRET, EVENT, PATCH_STATUS, *AGAIN],
        [("renew", "lease-2")],
        {"leaseId": "lease-2", "renewals": 0, "renewAt": "2026-06-01T12:06:23Z"},
        ["db"],
        prepare=_renew_down_once,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_the_first_scheduled_step(row: Row) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.take()
        for backend in h.backends.values():
            backend.take()
        row.prepare(h)
        await h.advance(h.next_due() or 0)
        assert h.take() == row.calls
        assert [c for b in h.backends.values() for c in b.take()] == row.backend_calls
        entry = h.entry()
        assert {k: entry.get(k) for k in row.entry} == row.entry
        assert entry["state"] == "Issued" and h.status()["phase"] == "Active"
        assert h.record_keys() == row.records

    play(Harness(row.objects, row.backends), scenario)


def test_the_overlapped_credential_is_revoked_at_retire_at() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await h.advance(h.next_due() or 0)  # re-issued, old kept for the overlap (30 s)
        h.take()
        h.backends["awsSts"].take()
        assert h.next_due() == pytest.approx(30.0)
        await h.advance(30)
        assert h.take() == [*STEP, *RETIRE, *AGAIN]
        assert h.backends["awsSts"].take() == [("revoke", "accessor-1")]
        assert h.record_keys() == ["db"]
        assert "retireAt" not in h.entry()

    play(Harness(world(request="awsSts")), scenario)


def test_a_credential_that_could_not_be_renewed_expires_and_the_task_waits() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        vault = h.backends["vault"]
        vault.fail("renew", BackendUnavailable("down"), times=None)
        vault.fail("login", BackendUnavailable("down"), times=None)
        await h.advance(600)  # the lease's whole ttl: renewals postponed until expiry
        assert h.secret_data("team-a", "t1-db") is None  # nothing stale stays behind
        assert h.entry()["state"] == "Expired"
        assert h.status()["phase"] == "Pending"
        assert h.ready() == ("False", Reason.BACKEND_UNAVAILABLE)  # re-issuing, backend still down
        renewals = [c for c in vault.take() if c[0] == "renew"]
        assert len(renewals) > 10  # retried with backoff, not once per ttl
        vault.heal()  # the backend is back
        await h.advance(h.next_due() or 0)
        assert h.status()["phase"] == "Active"
        assert h.entry()["state"] == "Issued"
        assert h.secret_data("team-a", "t1-db") is not None
        # the calls end with the status that says Active: the next step's time comes from
        # it (a renewal later on), not from another read of the task
        assert h.take()[-1:] == [PATCH_STATUS]
        assert (h.next_due() or 0) > 0

    play(Harness(world()), scenario)


def test_a_task_past_its_deadline_ends_expired_at_its_next_step() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.entry()["expiresAt"] == "2026-06-01T12:05:00Z"  # capped by the deadline
        await h.advance(300)
        assert h.status()["phase"] == "Expired"
        assert h.status()["reason"] == Reason.DEADLINE_EXCEEDED
        assert h.entry()["state"] == "Revoked"
        assert h.secret_data("team-a", "t1-db") is None
        # at renewAt the lease already lasted until the deadline: nothing renewed
        assert h.backends["vault"].take() == [
            ("login", "db"),
            ("issue", "db"),
            ("revoke", "accessor-1"),
        ]

    play(Harness(world(task=agent_task(deadline=300))), scenario)
