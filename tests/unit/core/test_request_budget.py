"""The request budget: the operator's own API calls for one task, from create to Active
and from completion to gone, per verb and resource.

Each figure here is a request to the API server for every task the operator runs, and
the API server's capacity is what bounds the burst rate (docs/performance.md). A change
that adds or removes a request makes this test fail: update the figure in the same
commit and say why. Kopf's own requests (its finalizer and progress-annotation PATCHes)
are outside the harness; ``make bench`` counts everything at the API server.
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


RESOLVE = {"get agentcredentials": 1, "get credentialbackends": 1, "get namespaces": 1}

BUDGETS = [
    Budget(
        "vault",  # a lease with a write-ahead session record (Vault dynamic)
        {
            "get agenttasks": 1,
            **RESOLVE,
            "get secrets": 3,  # the name is free; no stale session; the record, to add to it
            "create serviceaccounts/token": 1,
            "create secrets": 2,  # the session record, the generated Secret
            "create events": 1,
            "patch agenttasks/status": 1,
        },
        {
            "get agenttasks": 2,  # complete, then finalize
            "get secrets": 5,
            "delete secrets": 2,  # the generated Secret, the session record
            "create events": 2,  # CredentialRevoked, TaskEnded
            "patch agenttasks/status": 1,
        },
    ),
    Budget(
        "vault-kv",  # a static read through a session backend: no record kept
        {
            "get agenttasks": 1,
            **RESOLVE,
            "get secrets": 1,
            "create serviceaccounts/token": 1,
            "create secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
        {
            "get agenttasks": 2,
            "get secrets": 4,
            "delete secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
    ),
    Budget(
        "awsSecretsManager",  # a static secret read with the operator's identity
        {
            "get agenttasks": 1,
            **RESOLVE,
            "get secrets": 1,
            "create secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
        {
            "get agenttasks": 2,
            "get secrets": 4,
            "delete secrets": 1,
            "create events": 1,
            "patch agenttasks/status": 1,
        },
    ),
]


@pytest.mark.parametrize("budget", BUDGETS, ids=[b.request for b in BUDGETS])
def test_the_requests_of_one_task(budget: Budget) -> None:
    async def scenario(h: Harness) -> tuple[dict[str, int], dict[str, int]]:
        await h.start()
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
    assert totals == {"vault": (12, 12), "vault-kv": (9, 9), "awsSecretsManager": (8, 9)}


STEPS = {
    # renew in place: the task read 3 times (the step, under the lock, the step after),
    # the session record, the Secret's expiry annotation, LeaseRenewed, the entry
    "vault": {
        "get agenttasks": 3,
        **RESOLVE,
        "get secrets": 2,
        "patch secrets": 1,
        "create events": 1,
        "patch agenttasks/status": 1,
    },
    # re-issue with an overlap: a fresh login recorded under "<cred>.next", the Secret
    # replaced, the records rotated; each write of an existing Secret is create (409),
    # read, replace
    "awsSts": {
        "get agenttasks": 3,
        **RESOLVE,
        "get secrets": 6,
        "create serviceaccounts/token": 1,
        "create secrets": 3,
        "update secrets": 3,
        "create events": 1,
        "patch agenttasks/status": 1,
    },
    # refresh a static secret: re-read (shared), the Secret replaced, the entry
    "awsSecretsManager": {
        "get agenttasks": 3,
        **RESOLVE,
        "create secrets": 1,
        "get secrets": 1,
        "update secrets": 1,
        "patch agenttasks/status": 1,
    },
}


@pytest.mark.parametrize("request_kind", sorted(STEPS))
def test_the_requests_of_one_scheduled_step(request_kind: str) -> None:
    async def scenario(h: Harness) -> dict[str, int]:
        await h.start()
        h.take()
        await h.advance(h.next_due() or 0)
        return dict(count(h.take()))

    assert play(Harness(world(request=request_kind)), scenario) == STEPS[request_kind]
