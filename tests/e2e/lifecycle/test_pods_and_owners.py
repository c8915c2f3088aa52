"""Tasks bound to pods end with them; tasks owned by a Pod go with it; credentials die too."""

from __future__ import annotations

import pytest

from agentcred.models.api_names import EventReason, Label, Reason
from support import postgres
from support.credentials import vault_database
from support.kube import wait_for
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def bound_task(scene: Scenario, env: dict[str, str], name: str) -> dict[str, str]:
    account = vault_database(scene, env, f"{name}-db", account=f"{name}-agent")
    scene.pod(f"{name}-pod", {Label.TASK: name})
    scene.task(
        name,
        [f"{name}-db"],
        serviceAccountName=account,
        podSelector={"matchLabels": {Label.TASK: name}},
    )
    scene.wait_phase(name, "Active")
    wait_for(lambda: scene.status(name).get("pods", {}).get("seen"), 30, "pod seen")
    data = scene.read_secret(f"{name}-{name}-db")
    assert data is not None and postgres.can_login(env, data["username"], data["password"])
    return data


def test_deleting_the_only_pod_revokes_the_credential(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    data = bound_task(scenario, testbed_env, "gone")
    scenario.core.delete_namespaced_pod("gone-pod", scenario.ns)
    postgres.wait_refused(testbed_env, data, 20, "login refused after the pod was deleted")
    status = scenario.wait_phase("gone", "Failed")
    assert status["reason"] == Reason.PODS_DELETED
    assert scenario.read_secret("gone-gone-db") is None


def test_pod_succeeded_ends_the_task_as_succeeded(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    data = bound_task(scenario, testbed_env, "done")
    scenario.set_pod_phase("done-pod", "Succeeded")
    status = scenario.wait_phase("done", "Succeeded", timeout=20)
    assert status["reason"] == Reason.PODS_SUCCEEDED and status["completionTime"]
    postgres.wait_refused(testbed_env, data, 20)


def test_pod_failed_ends_the_task_as_failed(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    bound_task(scenario, testbed_env, "crash")
    scenario.set_pod_phase("crash-pod", "Failed")
    assert scenario.wait_phase("crash", "Failed", timeout=20)["reason"] == Reason.POD_FAILED


def test_task_waits_for_its_first_pod(scenario: Scenario, testbed_env: dict[str, str]) -> None:
    account = vault_database(scenario, testbed_env)
    scenario.task(
        "patient", ["db"], serviceAccountName=account, podSelector={"matchLabels": {"app": "later"}}
    )
    scenario.wait_phase("patient", "Active")
    assert not scenario.status("patient").get("pods", {}).get("seen")
    scenario.pod("later-pod", {"app": "later"})
    wait_for(lambda: scenario.status("patient").get("pods", {}).get("seen"), 20, "pod seen")
    assert scenario.status("patient")["phase"] == "Active"


def test_task_owned_by_a_pod_is_collected_with_it_and_revoked_on_its_deletion(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    account = vault_database(scenario, testbed_env)
    pod = scenario.pod("owner", {"app": "agent"})
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": pod.metadata.uid}
    scenario.create_task_with_owner("owned", ["db"], owner, serviceAccountName=account)
    scenario.wait_phase("owned", "Active")
    data = scenario.read_secret("owned-db")
    assert data is not None
    scenario.core.delete_namespaced_pod("owner", scenario.ns)
    # The garbage collector discovers the CRD and deletes the task (can take ~30 s).
    wait_for(lambda: scenario.get_task("owned") is None, 120, "task collected with its owner")
    # No finalizer holds it (issue 22): revoked on its DELETED event, just after it went.
    postgres.wait_refused(testbed_env, data, 30, "revoked on its deletion")
    wait_for(lambda: not postgres.role_exists(testbed_env, data["username"]), 30, "role dropped")
    ended = wait_for(
        lambda: [e for e in scenario.events("owned") if e.reason == EventReason.ENDED],
        30,
        "TaskEnded posted",
    )
    assert "owner Pod/owner was deleted" in ended[-1].message
