"""Revocation and renewal read "is this permanent?" from the error itself
(``models.errors.retry_decision``), as every other step does: a permanent failure is
never retried (a revocation that can never succeed is given up, its session's TTL bounds
it; a renewal that can never succeed becomes a re-issue), a temporary one is tried again
(the revocation's record kept, the renewal postponed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
)
from agentcred.models.api_names import Reason
from agentcred.models.errors import retry_decision
from support.harness import Harness, play
from support.harness.objects import world


@dataclass(frozen=True)
class Row:
    error: BackendError
    permanent: bool


ROWS = [
    Row(BackendDenied("permission denied"), permanent=True),
    Row(BackendNotFound("no such lease"), permanent=True),
    Row(BackendInvalidConfig("mount is not a secrets engine"), permanent=True),
    Row(BackendUnavailable("connection refused"), permanent=False),
    Row(BackendUnavailable("429", retry_after=7.0), permanent=False),
    Row(BackendError("an answer we do not understand"), permanent=False),
]
IDS = [f"{type(r.error).__name__}-{'permanent' if r.permanent else 'temporary'}" for r in ROWS]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_table_agrees_with_the_error_property(row: Row) -> None:
    assert retry_decision(row.error).permanent is row.permanent


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_failed_revocation_is_given_up_only_when_permanent(row: Row) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        vault = h.backends["vault"]
        vault.fail("revoke", row.error, times=None)
        vault.take()
        if row.permanent:
            await h.complete()  # gone for good: the record is dropped, the task ends
            assert h.record_keys() == []
        else:
            await h.complete()  # retried by the scheduler
            uid = h.body()["metadata"]["uid"]
            assert uid in h.deps.redo and h.next_due() is not None
            assert h.record_keys() == ["db"]  # kept for the next attempt
        assert vault.take() == [("revoke", "accessor-1")]
        assert h.status()["phase"] == "Succeeded"

    play(Harness(world()), scenario)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_failed_renewal_is_reissued_when_permanent_else_postponed(row: Row) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        vault = h.backends["vault"]
        vault.take()
        vault.fail("renew", row.error)
        await h.advance(h.next_due() or 0)
        calls = vault.take()
        assert calls[0] == ("renew", "lease-2")
        if row.permanent:  # a fresh credential instead
            assert calls[1:] == [("login", "db"), ("issue", "db")]
            assert h.entry()["reissues"] == 1
        else:  # the same lease, tried again within seconds
            assert calls[1:] == []
            assert (h.entry()["leaseId"], h.entry()["renewals"]) == ("lease-2", 0)
            assert h.ready() == ("False", Reason.RENEW_FAILED)
        assert h.status()["phase"] == "Active"

    play(Harness(world()), scenario)
