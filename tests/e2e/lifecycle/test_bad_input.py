"""Bad references and broken backends: a clear condition and Event, no crash, recovery."""

from __future__ import annotations

import pytest

from support import vault
from support.kube import wait_for
from support.operator import OperatorProcess
from support.scenario import Scenario

pytestmark = pytest.mark.e2e
DYNAMIC = {"path": "database/creds/readonly"}


def k8s_auth(scene: Scenario, env: dict[str, str]) -> dict[str, object]:
    account = scene.service_account("agent")
    return {"kubernetes": {"role": vault.kubernetes_role(env, scene.ns, account)}}


def test_missing_credential_waits_then_recovers_when_it_appears(
    scenario: Scenario, testbed_env: dict[str, str], operator: OperatorProcess
) -> None:
    auth = k8s_auth(scenario, testbed_env)
    scenario.task("early", ["db"], serviceAccountName="agent")
    cond = scenario.wait_condition("early", "CredentialNotFound")
    assert "AgentCredential" in cond["message"] and "db" in cond["message"]
    assert scenario.status("early")["phase"] == "Pending"
    assert "IssueFailed" in scenario.event_reasons("early")
    scenario.credential("db", vault={"auth": auth, "dynamic": DYNAMIC})
    scenario.wait_phase("early", "Active", timeout=90)
    assert operator.proc.poll() is None


def test_credential_of_another_namespace_is_not_found(
    scenario: Scenario, testbed_env: dict[str, str], kube: object
) -> None:
    other = Scenario(scenario.api, "default")
    other.credential(
        f"elsewhere-{scenario.ns}"[:63],
        vault={"auth": {"kubernetes": {"role": "x"}}, "dynamic": DYNAMIC},
    )
    scenario.task("crossing", [f"elsewhere-{scenario.ns}"[:63]])
    cond = scenario.wait_condition("crossing", "CredentialNotFound")
    assert "own namespace" in cond["message"]


def test_unreachable_vault_shows_and_the_operator_keeps_running(
    scenario: Scenario, testbed_env: dict[str, str], operator: OperatorProcess
) -> None:
    auth = k8s_auth(scenario, testbed_env)
    scenario.credential(
        "db", vault={"address": "http://127.0.0.1:9", "auth": auth, "dynamic": DYNAMIC}
    )
    scenario.task("offline", ["db"], serviceAccountName="agent")
    cond = scenario.wait_condition("offline", "BackendUnavailable")
    assert cond["status"] == "False"
    assert scenario.status("offline")["phase"] == "Pending"
    assert operator.proc.poll() is None


def test_template_with_an_unknown_field_fails_the_task(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    auth = k8s_auth(scenario, testbed_env)
    scenario.credential(
        "db",
        vault={"auth": auth, "dynamic": DYNAMIC},
        template={"URL": "postgresql://{{ user }}@db"},
    )
    scenario.task("templated", ["db"], serviceAccountName="agent")
    status = scenario.wait_phase("templated", "Failed")
    assert status["reason"] == "TemplateError"
    assert "user" in status["message"] and "username" in status["message"]
    assert scenario.read_secret("templated-db") is None


def test_secret_name_collision_never_overwrites_a_foreign_secret(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    auth = k8s_auth(scenario, testbed_env)
    scenario.secret("collide-db", {"mine": "do-not-touch-this-value"})
    scenario.credential("db", vault={"auth": auth, "dynamic": DYNAMIC})
    scenario.task("collide", ["db"], serviceAccountName="agent")
    cond = scenario.wait_condition("collide", "SecretConflict")
    assert "collide-db" in cond["message"]
    assert scenario.read_secret("collide-db") == {"mine": "do-not-touch-this-value"}
    # Removing the foreign Secret lets the task proceed on its own.
    scenario.core.delete_namespaced_secret("collide-db", scenario.ns)
    scenario.wait_phase("collide", "Active", timeout=120)


def test_credential_ready_condition_reports_backend_problems(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    auth = k8s_auth(scenario, testbed_env)
    scenario.credential("good", vault={"auth": auth, "dynamic": DYNAMIC})
    scenario.credential(
        "down", vault={"address": "http://127.0.0.1:9", "auth": auth, "dynamic": DYNAMIC}
    )
    scenario.credential(
        "noref",
        vault={
            "auth": {"appRole": {"roleId": "r", "secretIdRef": {"name": "absent", "key": "k"}}},
            "dynamic": DYNAMIC,
        },
    )

    def ready(name: str) -> dict[str, str] | None:
        obj = scenario.custom.get_namespaced_custom_object(
            "agentcred.io", "v1alpha1", scenario.ns, "agentcredentials", name
        )
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
        return conds.get("Ready")

    assert wait_for(lambda: ready("good"), 30, "Ready on good")["status"] == "True"
    assert wait_for(lambda: ready("down"), 30, "Ready on down")["reason"] == "BackendUnavailable"
    assert wait_for(lambda: ready("noref"), 30, "Ready on noref")["reason"] == "SecretNotFound"
