"""What the client library needs from the core: an agent's own failure report
(``spec.failureReason``), the ``Revoked`` condition, and the session's correlation id
reused by every action on the task. Exact API and backend calls, and the status."""

from __future__ import annotations

import json
import logging

import pytest

from agentcred.backends.base import BackendUnavailable
from agentcred.models.api_names import Annotation, ConditionType, Plural, Reason
from agentcred.services import lifecycle
from agentcred.services.task_events import Action
from support.harness import Harness, play
from support.harness.calls import DELETE_SECRET, EVENT, GET_SECRET, PATCH_STATUS
from support.harness.objects import NAMESPACE, agent_task, world

CLEANUP = [DELETE_SECRET, GET_SECRET, EVENT, DELETE_SECRET]  # as test_core_end.py
ENDED = [PATCH_STATUS, EVENT]


def revoked(h: Harness, name: str = "t1") -> tuple[str, str]:
    cond = next(c for c in h.status(name)["conditions"] if c["type"] == ConditionType.REVOKED)
    return cond["status"], cond["reason"]


async def report_failure(h: Harness, reason: str, *, completed: bool = False) -> None:
    """The agent writes ``spec.failureReason`` (and maybe ``completed``); its event is handled."""
    spec: dict[str, object] = {"failureReason": reason}
    if completed:
        spec["completed"] = True
    h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"spec": spec})
    assert await h.event("MODIFIED") is Action.COMPLETE


def test_a_reported_failure_ends_the_task_failed_and_revokes_as_completion_does() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.take()
        h.backends["vault"].take()
        await report_failure(h, "the agent gave up: no rows")
        assert h.take() == [*CLEANUP, *ENDED]  # the same calls as completion
        assert h.backends["vault"].take() == [("revoke", "accessor-1")]
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Failed", Reason.AGENT_REPORTED)
        assert status["message"] == "the agent gave up: no rows"
        assert h.ready() == ("False", Reason.AGENT_REPORTED)
        assert revoked(h) == ("True", Reason.CREDENTIALS_REVOKED)  # in the same patch
        assert h.secret_data(NAMESPACE, "t1-db") is None and h.record_keys() == []

    play(Harness(world()), scenario)


def test_completed_and_a_failure_reason_in_one_write_end_the_task_once_failed() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.take()
        await report_failure(h, "boom", completed=True)
        assert (h.status()["phase"], h.status()["reason"]) == ("Failed", Reason.AGENT_REPORTED)
        # The event of its own status patch: ended and cleaned up here, nothing to do.
        assert await h.event("MODIFIED") is Action.NOTHING
        await lifecycle.complete(h.deps, h.body())  # even asked directly: nothing left
        assert h.take() == [*CLEANUP, *ENDED]

    play(Harness(world()), scenario)


def test_a_task_created_with_a_failure_reason_ends_without_issuing() -> None:
    task = agent_task()
    task["spec"]["failureReason"] = "launcher aborted"

    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.backends["vault"].take() == []
        assert (h.status()["phase"], h.status()["reason"]) == ("Failed", Reason.AGENT_REPORTED)
        assert revoked(h) == ("True", Reason.CREDENTIALS_REVOKED)

    play(Harness(world(task=task)), scenario)


def test_revoked_is_false_while_revocation_is_retried_then_true() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        vault = h.backends["vault"]
        vault.fail("revoke", BackendUnavailable("connection refused"), times=None)
        await h.complete()  # the revocation fails for now: retried by the scheduler
        assert h.status()["phase"] == "Succeeded"
        assert revoked(h) == ("False", Reason.REVOCATION_PENDING)
        vault.heal()
        await h.advance(h.next_due() or 0)
        assert revoked(h) == ("True", Reason.CREDENTIALS_REVOKED)

    play(Harness(world()), scenario)


def test_revoked_names_what_its_backend_cannot_revoke() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await h.complete()
        cond = next(c for c in h.status()["conditions"] if c["type"] == ConditionType.REVOKED)
        assert (cond["status"], cond["reason"]) == ("True", Reason.CREDENTIALS_REVOKED)
        assert "db cannot be revoked by its backend" in cond["message"]

    play(Harness(world(request="awsSecretsManager")), scenario)


def _audit_ids(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentcred.audit"]
    return [(line["action"], line["correlation_id"]) for line in lines]


@pytest.mark.parametrize(
    ("given", "reused"),
    [
        ("4f1c2a9e-2b7d-4c5e-9f00-1a2b3c4d5e6f", True),
        ("session.42:retry-1", True),
        ("bad id\nX-Injected: 1", False),  # a header or a log line could be forged with it
        ("x" * 129, False),
        ("", False),
    ],
)
def test_every_action_carries_the_tasks_correlation_id_when_well_formed(
    caplog: pytest.LogCaptureFixture, given: str, reused: bool
) -> None:
    task = agent_task()
    task["metadata"]["annotations"] = {Annotation.CORRELATION_ID: given}

    async def scenario(h: Harness) -> None:
        await h.start()
        await h.complete()

    with caplog.at_level(logging.INFO, logger="agentcred.audit"):
        play(Harness(world(task=task)), scenario)
    ids = _audit_ids(caplog)
    assert [action for action, _ in ids] == ["issue", "revoke"]
    if reused:
        assert {cid for _, cid in ids} == {given}
    else:
        assert given not in {cid for _, cid in ids} and len({cid for _, cid in ids}) == 2
