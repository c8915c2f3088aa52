"""The request budget: the operator's own API calls for one task, from create to Active
and from completion to gone, per verb and resource.

Each figure here is a request to the API server for every task the operator runs, and
the API server's capacity is what bounds the burst rate (docs/performance.md). A change
that adds or removes a request makes this test fail: update the figure in the same
commit and say why. Since issue 22 Kopf makes no request of its own for a task (an
event handler only: no finalizer, no diff-base or progress annotations), so these are
all of a task's requests but the watch; ``make bench`` counts everything at the API server.

Issue 19 ("lock, read once, decide, write once"), before -> after, requests per task:

- create -> Active: Vault dynamic 12 -> 11 (the lease records read once for the
  stale-session check and the write-ahead record: get secrets 3 -> 2); KV 9 -> 9;
  AWS Secrets Manager 8 -> 8.
- completion -> gone: Vault dynamic 12 -> 8; KV 9 -> 6; AWS Secrets Manager 9 -> 6 (a
  Secret we wrote, or a lease record we just read, is deleted with its resourceVersion
  as the precondition, no read first; the finalizer of a task this process already
  cleaned up, with nothing issued since, does not look again: get secrets 5 -> 1,
  4 -> 1; a new process, which does not know, still looks).
- one scheduled step (the step takes the task's lock, reads the task once, and learns
  its next due time from the status it wrote: get agenttasks 3 -> 1; a Secret we wrote
  or read is written at that resourceVersion in one patch, not create 409, get, update):
  renewal 11 -> 8 (the expiry annotation patched without a read first), re-issue
  21 -> 11 (the records read once and rotated as the issue left them: get secrets
  6 -> 1, create 3 + update 3 -> patch 3), static refresh 10 -> 6.

Issue 22 ("create, don't look first"), create -> Active: Vault dynamic 11 -> 10, KV
9 -> 8, AWS Secrets Manager 8 -> 7: the generated Secret is created without a GET of
its name first; a 409 is the never-overwrite branch (read, found not ours: the task
waits, and what was issued for it is revoked). Completion -> gone and the steps are
unchanged. One status patch per transition: a restore of a tampered lease (overlap 0)
revokes the exposed credential before its one status patch (was 2 patches, the second
only to clear ``retireAt``; tests/unit/core/test_core_end.py).

Issue 22 ("no Kopf finalizer, diff-base or progress annotations"; tasks driven by their
watch events, services/task_events.py): the event's body is the read, so no handler
GETs the task (get agenttasks: create -> Active 1 -> 0, completion -> gone 2 -> 0: the
completion's MODIFIED event and the DELETED event carry the task). create -> Active:
Vault dynamic 10 -> 9, KV 8 -> 7, AWS Secrets Manager 7 -> 6; completion -> gone: 8 -> 6,
6 -> 4, 6 -> 4. Beside these, Kopf's own PATCHes of every task are gone (outside the
harness, so never in these figures): the finalizer and the diff-base annotation after
create, the diff-base after completion and the finalizer's release on delete (4 per task
in the simplest life, more with progress annotations on retries). The scheduled step
still reads the task once (it runs long after any event).

Issue 22, the watch-fed read cache (services/lookups.py): create -> Active Vault dynamic
10 -> 7, KV 8 -> 5, AWS Secrets Manager 7 -> 4; one scheduled step: renewal 8 -> 5,
re-issue 11 -> 8, static refresh 6 -> 3. Resolve's AgentCredential, CredentialBackend and
namespace labels (``RESOLVE``: a GET of each per key every 2 s before) come from the
cache Kopf's watch events keep; a miss (a task created before the watch delivered its
AgentCredential) is one GET of what is missing (tests/unit/core/test_core_read_cache.py).
Then Vault dynamic 7 -> 6: the write-ahead lease record is created with no read first
(get secrets 1 -> 0); a 409 (a record an attempt that never completed left) reads it and
retires the stale session as before (tests/unit/core/test_core_stale_records.py).

Both together: create -> Active Vault dynamic 11 -> 5, KV 9 -> 4, AWS Secrets Manager
8 -> 3; completion -> gone 8 -> 6, 6 -> 4, 6 -> 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from support.harness import Harness, count, play
from support.harness.objects import world


@dataclass(frozen=True)
class Budget:
    request: str  # the credential's kind of request (support/harness/objects.REQUESTS)
    create_to_active: dict[str, int]
    completion_to_gone: dict[str, int]


RESOLVE: dict[str, int] = {}  # from the watch-fed cache (was a GET of each of the three)

BUDGETS = [
    Budget(
        "vault",  # a lease with a write-ahead lease record (Vault dynamic)
        {
            **RESOLVE,
            "create serviceaccounts/token": 1,
            "create secrets": 2,  # the lease record (no read first), the generated Secret
            "create events": 1,
            "patch agenttasks/status": 1,
        },
        {
            "get secrets": 1,  # complete: the records (DELETED: cleaned up here, no look)
            "delete secrets": 2,  # the generated Secret, the lease record (at known versions)
            "create events": 2,  # CredentialRevoked, TaskEnded
            "patch agenttasks/status": 1,
        },
    ),
    Budget(
        "vault-kv",  # a static read through a session backend: no record kept
        {
            **RESOLVE,
            "create serviceaccounts/token": 1,
            "create secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
        {
            "get secrets": 1,
            "delete secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
    ),
    Budget(
        "awsSecretsManager",  # a static secret read with the operator's identity
        {
            **RESOLVE,
            "create secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
        {
            "get secrets": 1,
            "delete secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
    ),
]


@pytest.mark.parametrize("budget", BUDGETS, ids=[b.request for b in BUDGETS])
def test_the_requests_of_one_task(budget: Budget) -> None:
    async def scenario(h: Harness) -> tuple[dict[str, int], dict[str, int]]:
        await h.event("ADDED")  # its watch events, as the operator handles them
        assert h.status()["phase"] == "Active"
        created = dict(count(h.take()))
        await h.complete()
        await h.delete()
        assert h.task() is None
        return created, dict(count(h.take()))

    created, ended = play(Harness(world(request=budget.request)), scenario)
    assert created == budget.create_to_active, f"create→Active: {sum(created.values())}"
    assert ended == budget.completion_to_gone, f"completion→gone: {sum(ended.values())}"


def test_the_totals() -> None:
    """The headline figures (docs and the issue note quote them)."""
    totals = {
        b.request: (sum(b.create_to_active.values()), sum(b.completion_to_gone.values()))
        for b in BUDGETS
    }
    # before issue 19: vault (12, 12), vault-kv (9, 9), awsSecretsManager (8, 9); before
    # issue 22's "create, don't look first": vault (11, 8), vault-kv (9, 6), ASM (8, 6);
    # before its "no Kopf state on tasks" (event body read once): (10, 8), (8, 6), (7, 6);
    # before its read cache and the lease record's create without a read: (9, 6), (7, 4),
    # (6, 4)
    assert totals == {"vault": (5, 6), "vault-kv": (4, 4), "awsSecretsManager": (3, 4)}


STEPS = {
    # renew in place: the task read once (under its lock), the lease records, the
    # Secret's expiry annotation patched at the version we wrote, LeaseRenewed, the entry
    "vault": {
        "get agenttasks": 1,
        **RESOLVE,
        "get secrets": 1,
        "patch secrets": 1,
        "create events": 1,
        "patch agenttasks/status": 1,
    },
    # re-issue with an overlap: the records read once, a fresh login recorded under
    # "<cred>.next", the Secret rewritten, the records rotated; each write of a Secret
    # whose resourceVersion we hold is one patch at that version
    "awsSts": {
        "get agenttasks": 1,
        **RESOLVE,
        "get secrets": 1,
        "create serviceaccounts/token": 1,
        "patch secrets": 3,
        "create events": 1,
        "patch agenttasks/status": 1,
    },
    # refresh a static secret: re-read (shared), the Secret patched, the entry
    "awsSecretsManager": {
        "get agenttasks": 1,
        **RESOLVE,
        "patch secrets": 1,
        "patch agenttasks/status": 1,
    },
}


def test_the_step_totals() -> None:
    """The headline figures of one scheduled step (before issue 19: 11, 21, 10; before
    issue 22's read cache: 8, 11, 6)."""
    assert {kind: sum(calls.values()) for kind, calls in STEPS.items()} == {
        "vault": 5,
        "awsSts": 8,
        "awsSecretsManager": 3,
    }


@pytest.mark.parametrize("request_kind", sorted(STEPS))
def test_the_requests_of_one_scheduled_step(request_kind: str) -> None:
    async def scenario(h: Harness) -> dict[str, int]:
        await h.start()
        h.take()
        await h.advance(h.next_due() or 0)
        return dict(count(h.take()))

    assert play(Harness(world(request=request_kind)), scenario) == STEPS[request_kind]
