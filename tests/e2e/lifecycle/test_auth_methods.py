"""Every Vault auth method issues; a role that denies the agent shows on the task."""

from __future__ import annotations

import pytest

from agentcred.models.api_names import EventReason, Reason
from support import postgres, vault
from support.credentials import DYNAMIC
from support.kube import wait_for
from support.scenario import Scenario, default_block

pytestmark = pytest.mark.e2e


def vault_block(env: dict[str, str]) -> dict[str, object]:
    return default_block("vault", env)


def assert_issued_and_working(scene: Scenario, env: dict[str, str], task: str) -> None:
    scene.wait_phase(task, "Active")
    data = scene.read_secret(f"{task}-db")
    assert data is not None
    assert postgres.can_login(env, data["username"], data["password"])


def test_approle_auth_issues(scenario: Scenario, testbed_env: dict[str, str]) -> None:
    role_id, secret_id = vault.approle(testbed_env, f"{scenario.ns}-approle")
    secret = scenario.operator_secret("approle", {"secret-id": secret_id})
    ref = {"name": secret, "key": "secret-id"}
    backend = scenario.backend(
        "vault",
        {**vault_block(testbed_env), "auth": {"appRole": {"roleId": role_id, "secretIdRef": ref}}},
    )
    scenario.credential("db", backend=backend, vault={"dynamic": DYNAMIC})
    scenario.task("by-approle", ["db"])
    assert_issued_and_working(scenario, testbed_env, "by-approle")


def test_token_auth_issues_through_a_child_token(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    policy = vault.policy(
        testbed_env,
        f"{scenario.ns}-token",
        vault.DB_POLICY + 'path "auth/token/create" { capabilities = ["update"] }',
    )
    token = vault.admin(testbed_env).auth.token.create(policies=[policy], ttl="1h")["auth"]
    secret = scenario.operator_secret("vault-token", {"token": token["client_token"]})
    backend = scenario.backend(
        "vault",
        {
            **vault_block(testbed_env),
            "auth": {"token": {"secretRef": {"name": secret, "key": "token"}}},
        },
    )
    scenario.credential("db", backend=backend, vault={"dynamic": DYNAMIC})
    scenario.task("by-token", ["db"])
    assert_issued_and_working(scenario, testbed_env, "by-token")
    # Completing the task revokes the child, never the user's own token.
    scenario.complete("by-token")
    looked_up = vault.admin(testbed_env).auth.token.lookup(token["client_token"])
    assert looked_up["data"]["id"] == token["client_token"]


def test_role_that_denies_the_service_account_fails_the_task_visibly(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    scenario.service_account("agent")
    role = vault.kubernetes_role(testbed_env, scenario.ns, "someone-else")
    scenario.credential("db", vault={"role": role, "dynamic": DYNAMIC})
    scenario.task("denied", ["db"], serviceAccountName="agent")
    status = scenario.wait_phase("denied", "Failed")
    assert status["reason"] == Reason.DENIED
    assert "not authorized" in status["message"]
    # The Events are posted around the final status patch, not before it: wait for both.
    wait_for(
        lambda: {EventReason.ISSUE_FAILED, EventReason.ENDED} <= scenario.event_reasons("denied"),
        15,
        "IssueFailed and TaskEnded Events",
    )
    assert scenario.read_secret("denied-db") is None
