"""agentcred_client against the real stack: a kube-apiserver, the operator, OpenBao's
database engine and PostgreSQL. The client finds the testbed through $KUBECONFIG, as a
launcher outside the cluster does."""

from __future__ import annotations

import asyncio
import json

import pytest

from agentcred.models.api_names import Annotation, ConditionType, Reason
from agentcred_client import AgentTasks, TaskFailed
from support import postgres
from support.credentials import vault_database
from support.operator import OperatorProcess
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def database_url(env: dict[str, str]) -> dict[str, str]:
    """A template whose DATABASE_URL reaches the testbed's PostgreSQL."""
    where = f"{env['PGHOST']}:{env['PGPORT']}/{env['PGDATABASE']}"
    url = f"postgresql://{{{{ username | urlquery }}}}:{{{{ password | urlquery }}}}@{where}"
    return {"DATABASE_URL": url}


def revoked(scene: Scenario, name: str) -> str:
    conditions = scene.status(name).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == ConditionType.REVOKED), "")


def test_run_hands_out_a_working_login_and_returns_once_it_is_revoked(
    scenario: Scenario, testbed_env: dict[str, str], operator: OperatorProcess
) -> None:
    account = vault_database(
        scenario, testbed_env, "research-db", template=database_url(testbed_env)
    )
    with (
        AgentTasks(namespace=scenario.ns) as tasks,
        tasks.run(
            credentials=["research-db"],
            service_account=account,
            deadline_seconds=300,
            labels={"session": "s-1"},
            wait_revoked=True,
            correlation_id="chat-session-1",
        ) as t,
    ):
        data = t.secret("research-db")
        assert postgres.can_login_url(t.env["DATABASE_URL"])
        assert scenario.status(t.name)["phase"] == "Active"
    # wait_revoked returned: the task says Revoked, and the login really is gone
    status = scenario.status(t.name)
    assert (status["phase"], status["reason"]) == ("Succeeded", Reason.COMPLETED)
    assert revoked(scenario, t.name) == "True"
    assert not postgres.can_login(testbed_env, data["username"], data["password"])
    task = scenario.get_task(t.name) or {}
    assert task["metadata"]["annotations"][Annotation.CORRELATION_ID] == "chat-session-1"
    # the session's id is on every audit line the operator wrote for the task
    audit = [r for r in operator.records() if r.get("task") == t.name and "action" in r]
    assert [r["action"] for r in audit] == ["issue", "revoke"]
    assert {r["correlation_id"] for r in audit} == {"chat-session-1"}
    assert data["password"] not in json.dumps(audit)


def test_an_exception_in_the_session_fails_the_task_as_agent_reported(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    account = vault_database(scenario, testbed_env, "research-db")

    async def session() -> str:
        async with AgentTasks(namespace=scenario.ns) as tasks:
            with pytest.raises(LookupError):
                async with tasks.arun(["research-db"], account, wait_revoked=True) as t:
                    raise LookupError("no table named claims")
        return t.name

    name = asyncio.run(session())
    status = scenario.status(name)
    assert (status["phase"], status["reason"]) == ("Failed", Reason.AGENT_REPORTED)
    assert status["message"] == "LookupError: no table named claims"
    assert revoked(scenario, name) == "True"
    assert scenario.read_secret(f"{name}-research-db") is None


def test_a_refused_task_raises_task_failed_not_allowed(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    vault_database(scenario, testbed_env, "research-db", serviceAccounts=["someone-else"])
    with (
        AgentTasks(namespace=scenario.ns) as tasks,
        pytest.raises(TaskFailed) as refused,
        tasks.run(["research-db"], "agent", ready_timeout=60),
    ):
        raise AssertionError("not reached")
    assert refused.value.reason == Reason.NOT_ALLOWED
    assert "someone-else" in refused.value.message or "agent" in refused.value.message
