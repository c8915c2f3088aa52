"""Bad references and broken backends: a clear condition and Event, no crash, recovery."""

from __future__ import annotations

import pytest

from agentcred.models.api_names import EventReason, Reason
from support import vault
from support.credentials import DYNAMIC, vault_database
from support.kube import GROUP, VERSION, wait_for
from support.operator import OperatorProcess
from support.scenario import Scenario, default_block

pytestmark = pytest.mark.e2e


def k8s_role(scene: Scenario, env: dict[str, str]) -> str:
    account = scene.service_account("agent")
    return vault.kubernetes_role(env, scene.ns, account)


def unreachable_vault(scene: Scenario, env: dict[str, str]) -> str:
    """A backend whose address answers nothing (port 9: discard, closed here)."""
    block = {**default_block("vault", env), "address": "http://127.0.0.1:9"}
    return scene.backend("vault", block, suffix="-down")


def test_missing_credential_waits_then_recovers_when_it_appears(
    scenario: Scenario, testbed_env: dict[str, str], operator: OperatorProcess
) -> None:
    role = k8s_role(scenario, testbed_env)
    scenario.task("early", ["db"], serviceAccountName="agent")
    cond = scenario.wait_condition("early", Reason.CREDENTIAL_NOT_FOUND)
    assert "AgentCredential" in cond["message"] and "db" in cond["message"]
    assert scenario.status("early")["phase"] == "Pending"
    assert EventReason.ISSUE_FAILED in scenario.event_reasons("early")
    scenario.credential("db", vault={"role": role, "dynamic": DYNAMIC})
    scenario.wait_phase("early", "Active", timeout=90)
    assert operator.proc.poll() is None


def test_credential_of_another_namespace_is_not_found(
    scenario: Scenario, testbed_env: dict[str, str], kube: object
) -> None:
    other = Scenario(scenario.api, "default")
    name = f"elsewhere-{scenario.ns}"[:63]
    other.credential(name, vault={"role": "x", "dynamic": DYNAMIC})
    try:
        scenario.task("crossing", [name])
        cond = scenario.wait_condition("crossing", Reason.CREDENTIAL_NOT_FOUND)
        assert "own namespace" in cond["message"]
    finally:  # "default" outlives the test: what it made there goes now
        other.custom.delete_namespaced_custom_object(
            GROUP, VERSION, "default", "agentcredentials", name
        )
        other.custom.delete_cluster_custom_object(
            GROUP, VERSION, "credentialbackends", "default-vault"
        )


def test_unreachable_vault_shows_and_the_operator_keeps_running(
    scenario: Scenario, testbed_env: dict[str, str], operator: OperatorProcess
) -> None:
    vault_database(scenario, testbed_env, backend=unreachable_vault(scenario, testbed_env))
    scenario.task("offline", ["db"], serviceAccountName="agent")
    cond = scenario.wait_condition("offline", Reason.BACKEND_UNAVAILABLE)
    assert cond["status"] == "False"
    assert scenario.status("offline")["phase"] == "Pending"
    assert operator.proc.poll() is None


def test_template_with_an_unknown_field_fails_the_task(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    vault_database(scenario, testbed_env, template={"URL": "postgresql://{{ user }}@db"})
    scenario.task("templated", ["db"], serviceAccountName="agent")
    status = scenario.wait_phase("templated", "Failed")
    assert status["reason"] == Reason.TEMPLATE_ERROR
    assert "user" in status["message"] and "username" in status["message"]
    assert scenario.read_secret("templated-db") is None


def test_secret_name_collision_never_overwrites_a_foreign_secret(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    scenario.secret("collide-db", {"mine": "do-not-touch-this-value"})
    vault_database(scenario, testbed_env)
    scenario.task("collide", ["db"], serviceAccountName="agent")
    cond = scenario.wait_condition("collide", Reason.SECRET_CONFLICT)
    assert "collide-db" in cond["message"] and "never overwrites" in cond["message"]
    assert EventReason.SECRET_CONFLICT in scenario.event_reasons("collide")
    assert scenario.read_secret("collide-db") == {"mine": "do-not-touch-this-value"}
    # Removing the foreign Secret lets the task proceed on its own.
    scenario.core.delete_namespaced_secret("collide-db", scenario.ns)
    scenario.wait_phase("collide", "Active", timeout=120)


def test_credential_ready_condition_reports_backend_problems(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    role = k8s_role(scenario, testbed_env)
    scenario.credential("good", vault={"role": role, "dynamic": DYNAMIC})
    scenario.credential(
        "down",
        backend=unreachable_vault(scenario, testbed_env),
        vault={"role": role, "dynamic": DYNAMIC},
    )
    approle = {"appRole": {"roleId": "r", "secretIdRef": {"name": "absent", "key": "k"}}}
    noref = scenario.backend(
        "vault", {**default_block("vault", testbed_env), "auth": approle}, suffix="-noref"
    )
    scenario.credential("noref", backend=noref, vault={"dynamic": DYNAMIC})

    def ready(name: str) -> dict[str, str] | None:
        obj = scenario.custom.get_namespaced_custom_object(
            "agentcred.io", "v1alpha1", scenario.ns, "agentcredentials", name
        )
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
        return conds.get("Ready")

    assert wait_for(lambda: ready("good"), 30, "Ready on good")["status"] == "True"
    assert (
        wait_for(lambda: ready("down"), 30, "Ready on down")["reason"] == Reason.BACKEND_UNAVAILABLE
    )
    assert (
        wait_for(lambda: ready("noref"), 30, "Ready on noref")["reason"] == Reason.SECRET_NOT_FOUND
    )
