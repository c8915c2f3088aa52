"""Approval before issuance, in-process (services/approval.py through lifecycle.start and
the scheduled step): while a task waits nothing reaches a backend and no token is
requested; an approval binds to the task as first read; denial, timeout, self-approval,
another backend's approval and an edit of the task each do what docs/approval.md says."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from agentcred.models.api_names import API_VERSION, Annotation, Plural, Reason
from agentcred.services import approval
from agentcred.services.task_events import Action
from support.harness import Harness, play
from support.harness.calls import (
    EVENT,
    PATCH_STATUS,
    RESOLVE,
    TOKEN,
)
from support.harness.objects import (
    NAMESPACE,
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    service_account,
)
from support.harness.store import Body

LIST_APPROVALS = ("list", Plural.APPROVALS, "")
PATCH_APPROVAL = ("patch", Plural.APPROVALS, "status")
CREATOR = "alice"
APPROVER = "bob"


def created_by(task: Body, user: str | None = CREATOR) -> Body:
    if user is not None:
        task["metadata"]["annotations"] = {Annotation.CREATED_BY.value: user}
    return task


def gated(policy: dict[str, Any] | None = None, task: Body | None = None) -> list[Body]:
    return [
        namespace(),
        service_account(),
        credential_backend(approval=policy or {"required": True, "timeout": "10m"}),
        credential_backend("other"),
        agent_credential(),
        task if task is not None else created_by(agent_task()),
    ]


def an_approval(
    name: str = "yes",
    *,
    decision: str = "Approved",
    approver: str | None = APPROVER,
    backend: str = "backend",
    reason: str = "looks fine",
) -> Body:
    meta: Body = {"name": name, "namespace": NAMESPACE}
    if approver is not None:
        meta["annotations"] = {Annotation.APPROVED_BY.value: approver}
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentTaskApproval",
        "metadata": meta,
        "spec": {
            "taskRef": {"name": "t1"},
            "credentialBackend": backend,
            "decision": decision,
            "reason": reason,
        },
    }


async def decide(h: Harness, body: Body) -> Body:
    """An approver creates ``body``; the approval watch sees it; the woken step runs."""
    seeded = h.server.seed(body)
    await approval.on_approval(h.deps, seeded)
    await h.run_due()
    found = h.server.read(Plural.APPROVALS, NAMESPACE, seeded["metadata"]["name"])
    assert found is not None
    return found


def no_backend_call(h: Harness) -> None:
    assert [c for b in h.backends.values() for c in b.take()] == []


def test_a_task_needing_approval_waits_and_nothing_is_requested() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        calls = h.take()
        assert calls == [*RESOLVE, LIST_APPROVALS, EVENT, PATCH_STATUS]
        assert TOKEN not in calls
        no_backend_call(h)
        status = h.status()
        assert status["phase"] == "Pending" and status["reason"] == Reason.AWAITING_APPROVAL
        assert h.ready() == ("False", Reason.AWAITING_APPROVAL)
        assert status["approval"]["backends"] == ["backend"]
        assert status["approval"]["deadline"] == "2026-06-01T12:10:00Z"
        assert h.next_due() == 600.0  # the timeout, scheduled: no polling
        assert h.deps.awaiting  # the approvals-waiting gauge counts it

    play(Harness(gated()), scenario)


def test_approved_the_task_is_issued_and_the_approver_recorded() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await h.advance(30)
        no_backend_call(h)
        found = await decide(h, an_approval())
        assert found["status"]["state"] == "Applied"
        assert found["status"]["taskGeneration"] == 1
        assert h.status()["phase"] == "Active"
        assert h.backends["vault"].take() == [("login", "db"), ("issue", "db")]
        record = h.status()["approval"]
        assert record["decision"] == "Approved" and record["generation"] == 1
        assert record["decisions"] == [
            {
                "approval": "yes",
                "backend": "backend",
                "approver": APPROVER,
                "decision": "Approved",
                "reason": "looks fine",
            }
        ]
        assert not h.deps.awaiting

    play(Harness(gated()), scenario)


def test_denied_the_task_fails_and_nothing_is_requested() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.take()
        await decide(h, an_approval("no", decision="Denied", reason="not in prod"))
        assert TOKEN not in h.take()
        no_backend_call(h)
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Failed", Reason.APPROVAL_DENIED)
        assert APPROVER in status["message"] and "not in prod" in status["message"]
        assert status["approval"]["decisions"][0]["decision"] == "Denied"

    play(Harness(gated()), scenario)


def test_unanswered_the_task_times_out_at_its_deadline() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await h.advance(599)
        assert h.status()["phase"] == "Pending"
        await h.advance(2)
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Failed", Reason.APPROVAL_TIMED_OUT)
        no_backend_call(h)
        assert TOKEN not in h.take()
        assert h.next_due() is None

    play(Harness(gated()), scenario)


def test_the_default_timeout_is_an_hour() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.next_due() == 3600.0

    play(Harness(gated({"required": True})), scenario)


def test_approvals_that_do_not_count_say_why_and_the_task_waits() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        cases = [
            (an_approval("self", approver=CREATOR), "SelfApproval"),
            (an_approval("agent", approver="system:serviceaccount:team-a:agent"), "SelfApproval"),
            (an_approval("elsewhere", backend="nope"), "BackendMismatch"),
            (an_approval("anonymous", approver=None), "NoApprover"),
            (an_approval("unneeded", backend="other"), "BackendMismatch"),
        ]
        for body, reason in cases:
            found = await decide(h, body)
            assert (found["status"]["state"], found["status"]["reason"]) == ("Ignored", reason)
            assert h.status()["phase"] == "Pending"
        no_backend_call(h)

    play(Harness(gated()), scenario)


def test_a_task_without_a_stamped_creator_counts_no_approval() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        found = await decide(h, an_approval())
        assert found["status"]["reason"] == "CreatorUnknown"
        assert h.status()["phase"] == "Pending"
        no_backend_call(h)

    play(Harness(gated(task=created_by(agent_task(), None))), scenario)


def test_an_approval_read_before_an_edit_of_the_waiting_task_is_void() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        seeded = h.server.seed(an_approval())
        # Read (bound at generation 1) by a watch whose step is not run yet ...
        await approval.on_approval(h.deps, seeded)
        h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"spec": {"activeDeadlineSeconds": 9999}})
        await h.run_due()  # ... then the task was edited: it waits on
        found = h.server.read(Plural.APPROVALS, NAMESPACE, "yes") or {}
        assert (found["status"]["state"], found["status"]["reason"]) == ("Voided", "TaskChanged")
        assert h.status()["phase"] == "Pending"
        no_backend_call(h)
        later = await decide(h, an_approval("again"))  # a new approval, bound at generation 2
        assert later["status"]["state"] == "Applied"
        assert h.status()["phase"] == "Active"

    play(Harness(gated()), scenario)


def test_an_approved_task_edited_afterwards_ends_with_everything_revoked() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await decide(h, an_approval())
        assert h.status()["phase"] == "Active"
        h.backends["vault"].take()
        h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"spec": {"activeDeadlineSeconds": 9999}})
        assert await h.event("MODIFIED") is Action.APPROVAL  # decided from state: voided
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Failed", Reason.APPROVAL_VOIDED)
        assert h.server.read("secrets", NAMESPACE, "t1-db") is None
        assert ("revoke", "lease-2") in [(op, arg) for op, arg in h.backends["vault"].take()] or (
            h.record_keys() == []
        )
        found = h.server.read(Plural.APPROVALS, NAMESPACE, "yes") or {}
        assert found["status"]["state"] == "Voided"

    play(Harness(gated()), scenario)


def test_a_denial_wins_over_an_approval() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.server.seed(an_approval("yes"))
        await decide(h, an_approval("no", approver="carol", decision="Denied", reason="no"))
        assert h.status()["reason"] == Reason.APPROVAL_DENIED

    play(Harness(gated()), scenario)


def test_required_for_other_names_asks_nobody_and_costs_no_request() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert LIST_APPROVALS not in h.take()
        assert h.status()["phase"] == "Active"
        assert "approval" not in h.status()

    play(Harness(gated({"requiredFor": ["database/creds/prod-*"]})), scenario)


def test_required_for_a_matching_name_waits() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.status()["reason"] == Reason.AWAITING_APPROVAL
        no_backend_call(h)

    play(Harness(gated({"requiredFor": ["database/creds/*"]})), scenario)


def test_a_restart_keeps_waiting_and_the_deadline() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await h.advance(100)
        h.restart()
        await h.resume()
        assert h.status()["phase"] == "Pending"
        assert h.next_due() == 500.0
        no_backend_call(h)

    play(Harness(gated()), scenario)


def test_a_credential_the_allow_list_refuses_fails_without_asking_anyone() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Failed", Reason.NOT_ALLOWED)
        assert LIST_APPROVALS not in h.take()
        no_backend_call(h)

    objects = gated()
    objects[2]["spec"]["vault"]["allowedPaths"] = ["secret/data/*"]
    play(Harness(objects), scenario)


def test_the_audit_log_names_the_approver_decision_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        with caplog.at_level(logging.INFO, logger="agentcred.audit"):
            await decide(h, an_approval("no", decision="Denied", reason="not in prod"))
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentcred.audit"]
        denied = [line for line in lines if line["action"] == "approve"]
        assert denied == [
            {
                **denied[0],
                "outcome": "denied",
                "approver": APPROVER,
                "reason": "not in prod",
                "backend": "backend",
                "task": "t1",
            }
        ]

    play(Harness(gated()), scenario)
