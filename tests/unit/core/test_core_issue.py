"""Issuing a new task, per backend capability: the exact API and backend calls, and the
status they leave (its ADDED event → services/task_events → lifecycle.start → issuance:
the event's body is the read, no GET of the task)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agentcred.models.api_names import Reason
from agentcred.services.task_events import Action
from support.harness import Harness, failing_permanently, failing_temporarily, play
from support.harness.backends import FakeBackend
from support.harness.calls import (
    CREATE_SECRET,
    DELETE_SECRET,
    EVENT,
    GET_CREDENTIAL,
    GET_SECRET,
    PATCH_STATUS,
    RESOLVE,
    TOKEN,
    Short,
)
from support.harness.objects import (
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    service_account,
    world,
)
from support.harness.store import Body

# What every issue with a session does: the agent's token, the write-ahead session
# record (created with no read first: a new task has none; a 409 would read it and retire
# a stale session, test_core_stale_records.py), then the Secret, created without a look
# first (a 409 is the never-overwrite branch: see the taken name below).
LOGIN_ISSUE = [TOKEN, CREATE_SECRET, CREATE_SECRET]
ISSUED = [EVENT, PATCH_STATUS]  # CredentialIssued, then Pending+entry+Active in one patch
FAILED_END = [GET_SECRET, GET_SECRET, PATCH_STATUS, EVENT]  # nothing to clean, Failed, TaskEnded
# A name someone else's Secret holds: after the create's 409 (the last of LOGIN_ISSUE),
# the Secret read and found not ours; the session just logged in revoked and its
# record dropped (read, deleted).
TAKEN = [GET_SECRET, GET_SECRET, DELETE_SECRET]


@dataclass(frozen=True)
class Row:
    id: str
    objects: list[Body]
    calls: list[Short]
    backend_calls: list[tuple[str, str]]
    phase: str
    ready: tuple[str, str]
    backends: dict[str, FakeBackend] | None = None
    retry: str | None = None  # the reason it waits for its scheduled retry, if any
    records: list[str] = field(default_factory=list)


ROWS = [
    Row(
        "renewable lease",
        world(),
        [*RESOLVE, *LOGIN_ISSUE, *ISSUED],
        [("login", "db"), ("issue", "db")],
        "Active",
        ("True", Reason.CREDENTIALS_ISSUED),
        records=["db"],
    ),
    Row(
        "unrenewable lease",
        world(request="awsSts"),
        [*RESOLVE, *LOGIN_ISSUE, *ISSUED],
        [("login", "db"), ("issue", "db")],
        "Active",
        ("True", Reason.CREDENTIALS_ISSUED),
        records=["db"],
    ),
    Row(
        "static secret: no session recorded",
        world(request="awsSecretsManager"),
        [*RESOLVE, CREATE_SECRET, *ISSUED],
        [("issue", "db")],
        "Active",
        ("True", Reason.CREDENTIALS_ISSUED),
    ),
    Row(
        "static read through a session backend (Vault KV): a token, no lease record",
        world(request="vault-kv"),
        [*RESOLVE, TOKEN, CREATE_SECRET, *ISSUED],
        [("issue", "db")],
        "Active",
        ("True", Reason.CREDENTIALS_ISSUED),
    ),
    Row(
        "backend refuses for good: the task fails, nothing is left",
        world(),
        # IssueFailed, then end: the cleanup finds nothing, and the new task's Pending
        # fields ride on the Failed patch (one status write), then TaskEnded.
        [*RESOLVE, EVENT, *FAILED_END],
        [("login", "db")],
        "Failed",
        ("False", "Denied"),
        backends={"vault": failing_permanently()},
    ),
    Row(
        "backend down: the task waits Pending and start raises a retry",
        world(),
        [*RESOLVE, EVENT, PATCH_STATUS],
        [("login", "db")],
        "Pending",
        ("False", Reason.BACKEND_UNAVAILABLE),
        backends={"vault": failing_temporarily()},
        retry=Reason.BACKEND_UNAVAILABLE,
    ),
    Row(
        "the Secret's name is taken by someone else's: waits, never overwritten, "
        "the credential issued for it revoked",
        [*world(), {"kind": "Secret", "metadata": {"name": "t1-db", "namespace": "team-a"}}],
        [*RESOLVE, *LOGIN_ISSUE, *TAKEN, EVENT, PATCH_STATUS],
        [("login", "db"), ("issue", "db"), ("revoke", "accessor-1")],
        "Pending",
        ("False", Reason.SECRET_CONFLICT),
        retry=Reason.SECRET_CONFLICT,
    ),
    Row(
        "no such AgentCredential: waits, nothing sent anywhere",
        [namespace(), service_account(), credential_backend(), agent_task()],
        [GET_CREDENTIAL, EVENT, PATCH_STATUS],
        [],
        "Pending",
        ("False", Reason.CREDENTIAL_NOT_FOUND),
        retry=Reason.CREDENTIAL_NOT_FOUND,
    ),
    Row(
        "no such ServiceAccount: the login's TokenRequest is refused, the task waits",
        [namespace(), credential_backend(), agent_credential(), agent_task()],
        [*RESOLVE, TOKEN, EVENT, PATCH_STATUS],
        [("login", "db")],
        "Pending",
        ("False", Reason.REFERENCE_NOT_FOUND),
        retry=Reason.REFERENCE_NOT_FOUND,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_issue(row: Row) -> None:
    async def scenario(h: Harness) -> None:
        assert await h.event("ADDED") is Action.START
        uid = h.body()["metadata"]["uid"]
        if row.retry is None:
            assert uid not in h.deps.redo
        else:  # retried by the scheduler, after our backoff, along the full path
            assert uid in h.deps.redo and h.scheduler.attempts(uid) == 1
            assert h.next_due() is not None and h.next_due() > 0
            assert h.ready() == ("False", row.retry)
        assert h.take() == row.calls
        assert [c for b in h.backends.values() for c in b.take()] == row.backend_calls
        assert h.status()["phase"] == row.phase
        assert h.ready() == row.ready
        assert h.record_keys() == row.records

    play(Harness(row.objects, row.backends), scenario)


def test_an_issued_task_records_its_secret_and_when_to_act_next() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        entry = h.entry()
        assert entry["state"] == "Issued" and entry["leaseId"] == "lease-2"
        assert entry["expiresAt"] == "2026-06-01T12:10:00Z"  # the credential's ttl: 10m
        assert "2026-06-01T12:05" < entry["renewAt"] < "2026-06-01T12:07"  # ~67 %, jittered
        secret = h.server.read("secrets", "team-a", "t1-db") or {}
        assert entry["secretResourceVersion"] == secret["metadata"]["resourceVersion"]
        assert h.secret_data("team-a", "t1-db") == {
            "username": "user-lease-2",
            "password": "pw-lease-2",
        }
        assert h.next_due() == pytest.approx(382.0)  # scheduled from the status just written

    play(Harness(world()), scenario)


def test_a_second_start_issues_nothing_again() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.take()
        await h.start()  # started again (a restart's full path): idempotent
        assert h.take() == [GET_SECRET]  # the entry's Secret is there: done
        assert h.backends["vault"].take() == [("login", "db"), ("issue", "db")]

    play(Harness(world()), scenario)
