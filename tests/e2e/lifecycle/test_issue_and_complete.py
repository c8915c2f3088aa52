"""A task's credential really works while it runs and really stops working when it ends."""

from __future__ import annotations

import pytest

from agentcred.models.api_names import (
    KOPF_TASK_ANNOTATIONS,
    Annotation,
    EventReason,
    Label,
    Reason,
)
from support import postgres
from support.credentials import vault_database
from support.kube import wait_for
from support.scenario import Scenario

pytestmark = pytest.mark.e2e
TEMPLATE = {"DATABASE_URL": "postgresql://{{ username }}:{{ password }}@127.0.0.1:5432/app"}


def research_db(scene: Scenario, env: dict[str, str]) -> str:
    """The README's research-db: a database credential with a DATABASE_URL template."""
    return vault_database(scene, env, "research-db", account="research-agent", template=TEMPLATE)


def test_issued_password_logs_in_and_is_refused_after_completion(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    account = research_db(scenario, testbed_env)
    status, data = scenario.issue("claim-4711", "research-db", serviceAccountName=account)

    assert {"username", "password", "DATABASE_URL"} <= set(data)
    assert data["DATABASE_URL"] == (
        f"postgresql://{data['username']}:{data['password']}@127.0.0.1:5432/app"
    )
    assert postgres.can_login(testbed_env, data["username"], data["password"])

    secret = scenario.secret_object("claim-4711-research-db")
    assert secret.metadata.labels[Label.MANAGED_BY] == "agentcred"
    assert secret.metadata.labels[Label.TASK] == "claim-4711"
    assert secret.metadata.labels[Label.CREDENTIAL] == "research-db"
    assert secret.metadata.annotations[Annotation.EXPIRES_AT]
    owner = secret.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("AgentTask", "claim-4711", True)

    entry = status["credentials"][0]
    assert entry["leaseId"].startswith("database/creds/readonly/")
    assert entry["backend"] == "vault" and entry["state"] == "Issued"
    assert entry["expiresAt"] and entry["renewAt"] and entry["renewable"] is True
    assert status["startTime"] and status["expiresAt"]
    assert {"CredentialIssued"} <= scenario.event_reasons("claim-4711")

    final = scenario.complete("claim-4711")
    assert final["completionTime"]
    wait_for(lambda: scenario.read_secret("claim-4711-research-db") is None, 30, "Secret deleted")
    wait_for(lambda: not postgres.role_exists(testbed_env, data["username"]), 30, "role dropped")
    assert not postgres.can_login(testbed_env, data["username"], data["password"])
    assert wait_for(
        lambda: scenario.status("claim-4711")["credentials"][0]["state"] == "Revoked",
        30,
        "credential recorded as Revoked",
    )
    wait_for(
        lambda: {EventReason.REVOKED, EventReason.ENDED} <= scenario.event_reasons("claim-4711"),
        15,
        "CredentialRevoked and TaskEnded Events",
    )


def test_deadline_expires_the_task_and_revokes(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    account = research_db(scenario, testbed_env)
    _, data = scenario.issue(
        "short", "research-db", serviceAccountName=account, activeDeadlineSeconds=10
    )
    status = scenario.wait_phase("short", "Expired", timeout=60)
    assert status["reason"] == Reason.DEADLINE_EXCEEDED and status["completionTime"]
    wait_for(lambda: scenario.read_secret("short-research-db") is None, 30, "Secret deleted")
    postgres.wait_refused(testbed_env, data)


def test_a_deleted_task_goes_at_once_and_its_lease_is_revoked_on_its_deleted_event(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    account = research_db(scenario, testbed_env)
    _, data = scenario.issue("doomed", "research-db", serviceAccountName=account)
    meta = scenario.get_task("doomed")["metadata"]
    assert not meta.get("finalizers")  # Kopf stores nothing on a task: no finalizer ...
    assert not set(meta.get("annotations") or {}) & set(KOPF_TASK_ANNOTATIONS)  # ... nor these
    scenario.delete_task("doomed")
    assert scenario.get_task("doomed") is None  # nothing holds it
    postgres.wait_refused(testbed_env, data, 30, "revoked on the DELETED event")
    wait_for(lambda: not postgres.role_exists(testbed_env, data["username"]), 30, "role dropped")


def test_drift_deleted_or_edited_secret_is_restored_with_a_fresh_credential(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    account = research_db(scenario, testbed_env)
    _, first = scenario.issue("drift", "research-db", serviceAccountName=account)

    scenario.core.delete_namespaced_secret("drift-research-db", scenario.ns)
    second = wait_for(
        lambda: (
            (d := scenario.read_secret("drift-research-db"))
            and d["username"] != first["username"]
            and d
        ),
        30,  # the test operator's restore interval is 2 s (the 30 s: test_core_drift_rate)
        "Secret restored",
    )
    assert postgres.can_login(testbed_env, second["username"], second["password"])
    postgres.wait_refused(testbed_env, first, 30, "the exposed credential revoked")

    scenario.core.patch_namespaced_secret(
        "drift-research-db", scenario.ns, {"stringData": {"password": "tampered-value"}}
    )
    third = wait_for(
        lambda: (
            (d := scenario.read_secret("drift-research-db"))
            and d["username"] not in (first["username"], second["username"])
            and d
        ),
        30,
        "edited Secret restored",
    )
    assert third["password"] != "tampered-value"
    assert postgres.can_login(testbed_env, third["username"], third["password"])
    assert EventReason.RESTORED in scenario.event_reasons("drift")
