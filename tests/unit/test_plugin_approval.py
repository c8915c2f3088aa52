"""kubectl agentcred approve/deny (agentcred/plugin/approval.py): the parser, which backend
it decides for, the object it creates and what it prints (the e2e suite runs it for real)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from agentcred.plugin import approval, main
from agentcred.plugin.api import EXIT_NOT_FOUND, server_message

WAITING = {
    "metadata": {"name": "t1", "namespace": "team-a"},
    "status": {
        "phase": "Pending",
        "reason": "AwaitingApproval",
        "approval": {"backends": ["prod-db"]},
    },
}


def parse(*argv: str) -> argparse.Namespace:
    return main.parser().parse_args(argv)


def test_deny_needs_a_reason_and_approve_does_not() -> None:
    with pytest.raises(SystemExit) as exited:
        parse("deny", "t1")
    assert exited.value.code == main.EXIT_USAGE
    args = parse("approve", "t1", "-n", "team-a", "--as", "bob")
    assert (args.task, args.namespace, args.reason, args.backend) == ("t1", "team-a", "", None)
    assert (args.run, args.as_user) == (approval.approve_task, "bob")
    assert parse("deny", "t1", "--reason", "freeze").run is approval.deny_task


def test_the_backend_is_the_one_the_task_waits_for() -> None:
    assert approval.pick_backend(WAITING, None) == "prod-db"
    assert approval.pick_backend(WAITING, "prod-db") == "prod-db"


@pytest.mark.parametrize(
    ("task", "backend", "says"),
    [
        (
            {**WAITING, "status": {"phase": "Active", "reason": "CredentialsIssued"}},
            None,
            "does not wait",
        ),
        (WAITING, "other", "not other"),
        (
            {**WAITING, "status": {**WAITING["status"], "approval": {"backends": ["a", "b"]}}},
            None,
            "--backend",
        ),
    ],
)
def test_a_task_that_cannot_take_the_decision_is_refused(
    task: dict[str, Any], backend: str | None, says: str
) -> None:
    with pytest.raises(approval.Unusable, match=says):
        approval.pick_backend(task, backend)


def test_the_approval_it_creates() -> None:
    body = approval.approval_body("t1", "team-a", "prod-db", "Denied", "freeze")
    assert body["kind"] == "AgentTaskApproval"
    assert body["metadata"] == {"generateName": "t1-denied-", "namespace": "team-a"}
    assert body["spec"] == {
        "taskRef": {"name": "t1"},
        "credentialBackend": "prod-db",
        "decision": "Denied",
        "reason": "freeze",
    }
    assert "annotations" not in body["metadata"]  # the API server stamps the approver


def test_what_it_prints() -> None:
    created = {
        **approval.approval_body("t1", "team-a", "prod-db", "Approved", ""),
        "metadata": {"name": "t1-approved-abcde", "namespace": "team-a"},
    }
    assert approval.describe(created) == (
        "agenttaskapproval team-a/t1-approved-abcde created: Approved t1 for CredentialBackend "
        "prod-db"
    )


def test_a_task_that_does_not_wait_is_exit_code_3() -> None:
    with pytest.raises(approval.Unusable) as refused:
        approval.pick_backend({"metadata": {"name": "t1"}, "status": {}}, None)
    assert refused.value.code == EXIT_NOT_FOUND


def test_a_refusal_prints_the_api_servers_message() -> None:
    body = json.dumps({"message": "bob may not approve for CredentialBackend prod-db"})
    assert server_message(body) == "bob may not approve for CredentialBackend prod-db"
    assert server_message(b"not json") == ""
    assert server_message(None) == ""
