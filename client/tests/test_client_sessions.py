"""A session end to end against the operator's core in-process (client_fakes.py): what
the client sends, what the operator makes of it, and what the client raises."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest

from agentcred.models.api_names import Annotation, ConditionType, Reason
from agentcred_client import TaskFailed, TaskTimeout
from client_fakes import NAMESPACE, cluster
from support.harness.objects import agent_credential, namespace, service_account, world

CREATE = ("create", "agenttasks", "")
LIST = ("list", "agenttasks", "")
WATCH = ("watch", "agenttasks", "")
PATCH = ("patch", "agenttasks", "")
GET_SECRET = ("get", "secrets", "")
NO_TASK = world(task={"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "spare"}})


def play(scenario: object) -> None:
    asyncio.run(scenario)  # type: ignore[arg-type]


def condition(body: dict[str, object], type_: str) -> dict[str, str]:
    conditions = (body.get("status") or {}).get("conditions") or []  # type: ignore[union-attr]
    return next((c for c in conditions if c["type"] == type_), {})


def test_run_yields_the_credentials_and_completes_the_task() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, kopf, tasks, calls):
            async with tasks.arun(
                credentials=["db"], service_account="agent", labels={"session": "s1"}
            ) as t:
                body = h.body(t.name)
                assert h.status(t.name)["phase"] == "Active"
                assert t.secret("db") == h.secret_data(NAMESPACE, f"{t.name}-db")
                assert set(t.secret("db")) == {"username", "password"}
                assert t.env == t.secret("db")
                assert t.secret_names == {"db": f"{t.name}-db"}
            annotations = body["metadata"]["annotations"]
            assert uuid.UUID(annotations[Annotation.CORRELATION_ID]) == uuid.UUID(t.correlation_id)
            assert Annotation.TRACEPARENT not in annotations  # no SDK, no incoming trace
            assert body["metadata"]["labels"] == {"session": "s1"}
            assert body["spec"] == {"credentials": [{"name": "db"}], "serviceAccountName": "agent"}
            # create, read once, watch until Active, read its Secret, end it: nothing polled
            assert calls == [CREATE, LIST, WATCH, GET_SECRET, PATCH]
            await kopf.settle()
            status = h.status(t.name)
            assert (status["phase"], status["reason"]) == ("Succeeded", Reason.COMPLETED)
            assert h.secret_data(NAMESPACE, f"{t.name}-db") is None
            assert h.backends["vault"].take()[-1][0] == "revoke"

    play(scenario())


def test_an_exception_fails_the_task_with_its_message_and_no_credential_value() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, kopf, tasks, _calls):
            with pytest.raises(RuntimeError):
                async with tasks.arun(credentials=["db"], service_account="agent") as t:
                    password = t.secret("db")["password"]
                    raise RuntimeError(f"login as {password} refused\nby the database")
            await kopf.settle()
            body = h.body(t.name)
            assert (
                body["spec"]["failureReason"]
                == "RuntimeError: login as *** refused by the database"
            )
            status = h.status(t.name)
            assert (status["phase"], status["reason"]) == ("Failed", Reason.AGENT_REPORTED)
            assert status["message"] == body["spec"]["failureReason"]
            assert password not in json.dumps(body)
            assert h.secret_data(NAMESPACE, f"{t.name}-db") is None

    play(scenario())


def test_a_refusal_raises_task_failed_with_the_operators_reason() -> None:
    objects = [
        namespace(),
        service_account(),
        *world()[2:3],
        agent_credential(serviceAccounts=["someone-else"]),
    ]

    async def scenario() -> None:
        async with cluster(objects) as (h, _, tasks, calls):
            with pytest.raises(TaskFailed) as refused:
                async with tasks.arun(credentials=["db"], service_account="agent"):
                    raise AssertionError("not reached")
            assert refused.value.reason == Reason.NOT_ALLOWED
            assert "agent" in refused.value.message
            assert h.status(refused.value.name)["phase"] == "Failed"
            assert PATCH not in calls  # ended by the operator: nothing for the client to end

    play(scenario())


def test_a_creation_the_api_server_refuses_raises_task_failed() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, _, tasks, _calls):
            h.server.fail("create", "agenttasks", 403)
            with pytest.raises(TaskFailed) as refused:
                async with tasks.arun(credentials=["db"], service_account="agent"):
                    raise AssertionError("not reached")
            assert refused.value.reason == "Forbidden"

    play(scenario())


def test_wait_revoked_returns_once_the_revoked_condition_is_true() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, _, tasks, calls):
            async with tasks.arun(["db"], "agent", wait_revoked=True, name="w1") as t:
                pass
            assert condition(h.body(t.name), ConditionType.REVOKED)["status"] == "True"
            # ended, then read and watched (not polled) until Revoked
            assert calls[:6] == [CREATE, LIST, WATCH, GET_SECRET, PATCH, LIST]
            assert set(calls[6:]) <= {WATCH}

    play(scenario())


def test_ready_timeout_raises_and_ends_the_task() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, kopf, tasks, _calls):
            kopf.hold = True  # no operator gets to it
            with pytest.raises(TaskTimeout):
                async with tasks.arun(["db"], "agent", ready_timeout=0.05, name="late"):
                    raise AssertionError("not reached")
            assert h.body("late")["spec"]["completed"] is True
            assert "not Active within 0.05 s" in h.body("late")["spec"]["failureReason"]

    play(scenario())


def test_time_awaiting_approval_does_not_count_against_ready_timeout() -> None:
    awaiting = {
        "phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False", "reason": "AwaitingApproval"}],
    }

    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, kopf, tasks, _calls):
            kopf.hold = True

            async def approve_later() -> None:
                await kopf.arrived.wait()
                h.server.edit("agenttasks", NAMESPACE, "ap", {"status": awaiting})
                await asyncio.sleep(0.3)  # waiting for a person: longer than ready_timeout
                kopf.hold = False
                await h.start("ap")

            approver = asyncio.create_task(approve_later())
            async with tasks.arun(["db"], "agent", ready_timeout=0.2, name="ap") as t:
                assert t.secret("db")
            await approver

    play(scenario())


def test_the_operator_uses_the_sessions_correlation_id_for_every_action(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (_, kopf, tasks, _calls):
            async with tasks.arun(["db"], "agent", correlation_id="session-4711"):
                pass
            await kopf.settle()

    with caplog.at_level(logging.INFO, logger="agentcred.audit"):
        play(scenario())
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentcred.audit"]
    assert [line["action"] for line in lines] == ["issue", "revoke"]
    assert {line["correlation_id"] for line in lines} == {"session-4711"}


def test_a_cancelled_session_ends_its_task_failed() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, kopf, tasks, _calls):
            inside = asyncio.Event()

            async def session() -> None:
                async with tasks.arun(["db"], "agent", name="c1"):
                    inside.set()
                    await asyncio.Event().wait()  # the agent's work, cut short

            running = asyncio.create_task(session())
            await inside.wait()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            await kopf.settle()
            assert h.body("c1")["spec"]["failureReason"] == "CancelledError"
            assert h.status("c1")["reason"] == Reason.AGENT_REPORTED

    play(scenario())


def test_the_wait_survives_a_watch_that_ends_and_a_410_gone() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, kopf, tasks, calls):
            kopf.hold = True

            async def disrupt_then_start() -> None:
                await kopf.arrived.wait()
                await kopf.settle()  # the client is watching by now
                h.server.store.compact()  # resuming from its version is now 410 Gone
                h.server.edit("namespaces", "", NAMESPACE, {"metadata": {"labels": {"x": "1"}}})
                h.server.store.end_watches()  # the server's watch timeout
                await kopf.settle()
                kopf.hold = False
                await h.start("g1")

            disruptor = asyncio.create_task(disrupt_then_start())
            async with tasks.arun(["db"], "agent", name="g1") as t:
                assert t.secret("db")
            await disruptor
            # read, watch; the watch ended: re-watched, 410: read again, watched again
            assert calls[:5] == [CREATE, LIST, WATCH, WATCH, LIST]
            assert calls[5:] == [WATCH, GET_SECRET, PATCH]

    play(scenario())


def test_not_now_answers_are_retried_as_client_go_does() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, _, tasks, calls):
            h.server.fail("create", "agenttasks", 429, retry_after=0.01)  # a CRD re-applied
            h.server.fail("list", "agenttasks", 503)  # only the client lists (the operator gets)
            async with tasks.arun(["db"], "agent") as t:
                assert t.secret("db")
            assert calls[:4] == [CREATE, CREATE, LIST, LIST]  # each answered "not now" once
            assert calls[-2:] == [GET_SECRET, PATCH] and set(calls[4:-2]) <= {WATCH}

    play(scenario())
