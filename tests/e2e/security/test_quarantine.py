"""Quarantine and the kubectl plugin against the real stack, run as people would: an
incident responder holding only agentcred-incident-responder and a tenant holding only
agentcred-tenant, each a ServiceAccount with a kubeconfig of its own, typing
``kubectl agentcred``. A quarantine by ServiceAccount, by namespace and by backend ends
exactly the matching tasks, their database roles stop logging in at PostgreSQL, new
matching tasks are refused, and lifting it lets new ones through; no plugin output ever
holds a credential value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client

from agentcred.models.api_names import EventReason, Reason
from support import postgres
from support.credentials import vault_database
from support.kube import wait_for
from support.operator import OperatorProcess
from support.plugin import User, bind_cluster_role, person, wait_allowed
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


@pytest.fixture
def alice(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    namespace: str,
    shipped_policy: None,
    tmp_path: Path,
) -> User:
    user = person(kube, testbed_env["KUBECONFIG"], namespace, "alice", tmp_path)
    bind_cluster_role(kube, "agentcred-tenant", user, namespace)
    wait_allowed(user, "leases", "-n", namespace)
    return user


def quarantine(responder: User, *targets: str) -> str:
    """``kubectl agentcred quarantine ... --wait``; the quarantine's name."""
    done = responder.run("quarantine", *targets, "--reason", "prompt injection", "--wait", "30")
    assert done.returncode == 0, done.stderr
    first = done.stdout.split()[0]
    assert first.startswith("credentialquarantine.agentcred.io/"), done.stdout
    assert "Complete:" in done.stdout and "True" in done.stdout, done.stdout
    return first.split("/", 1)[1]


def lift(responder: User, operator: OperatorProcess, name: str) -> None:
    done = responder.run("lift", name)
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: any(f"CredentialQuarantine {name} lifted" in line for line in operator.log_lines()),
        15,
        f"the operator to see {name} lifted",
    )


def quarantined(scene: Scenario, task: str, name: str) -> None:
    status = scene.wait_phase(task, "Failed", 30)
    assert status["reason"] == Reason.QUARANTINED
    assert f"CredentialQuarantine {name}: prompt injection" in status["message"]
    assert scene.read_secret(f"{task}-db") is None


def test_by_service_account_ends_only_its_tasks_refuses_new_ones_and_lifts(
    scenario: Scenario,
    testbed_env: dict[str, str],
    operator: OperatorProcess,
    responder: User,
) -> None:
    agent = vault_database(scenario, testbed_env, "db", account="agent")
    other = vault_database(scenario, testbed_env, "db2", account="other")
    _, hit = scenario.issue("hit", "db", serviceAccountName=agent)
    _, spared = scenario.issue("spared", "db2", serviceAccountName=other)

    name = quarantine(responder, "--service-account", f"{scenario.ns}/agent")
    quarantined(scenario, "hit", name)
    postgres.wait_refused(testbed_env, hit, 15, "the quarantined task's role refused")
    assert scenario.status("spared")["phase"] == "Active"
    assert postgres.can_login(testbed_env, spared["username"], spared["password"])

    scenario.task("again", ["db"], serviceAccountName=agent)  # refused before any backend call
    quarantined(scenario, "again", name)
    assert not scenario.status("again").get("credentials")

    lift(responder, operator, name)
    scenario.issue("after", "db", serviceAccountName=agent)
    assert scenario.status("hit")["phase"] == "Failed"  # nothing re-issued for what it ended


def test_by_namespace_and_by_backend(
    scenario: Scenario,
    testbed_env: dict[str, str],
    operator: OperatorProcess,
    responder: User,
) -> None:
    agent = vault_database(scenario, testbed_env, "db")
    _, first = scenario.issue("first", "db", serviceAccountName=agent)
    name = quarantine(responder, "--namespace", scenario.ns)
    quarantined(scenario, "first", name)
    postgres.wait_refused(testbed_env, first, 15)
    lift(responder, operator, name)

    _, second = scenario.issue("second", "db", serviceAccountName=agent)
    backend = scenario.backend("vault")  # the namespace's testbed Vault backend
    name = quarantine(responder, "--backend", backend, "--name", f"{scenario.ns}-by-backend")
    quarantined(scenario, "second", name)
    postgres.wait_refused(testbed_env, second, 15)
    scenario.task("third", ["db"], serviceAccountName=agent)
    quarantined(scenario, "third", name)
    lift(responder, operator, name)


def test_every_plugin_command_as_its_user_and_no_value_in_any_output(
    scenario: Scenario,
    testbed_env: dict[str, str],
    responder: User,
    alice: User,
) -> None:
    agent = vault_database(scenario, testbed_env, "db")
    status, data = scenario.issue("claim", "db", serviceAccountName=agent)
    lease = status["credentials"][0]["leaseId"]
    outputs: list[str] = []

    def ok(user: User, *args: str) -> str:
        done = user.run(*args)
        outputs.extend((done.stdout, done.stderr))
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = ok(responder, "status", "claim", "-n", scenario.ns)
    assert "Active" in shown and lease in shown and "claim-db" in shown
    assert EventReason.ISSUED in shown  # its Events (the responder may read them)
    view = json.loads(ok(alice, "status", "claim", "-o", "json"))
    assert view["phase"] == "Active" and view["credentials"][0]["leaseId"] == lease

    assert lease in ok(alice, "leases", "-n", scenario.ns)
    rows = json.loads(ok(responder, "leases", "-o", "json"))["leases"]
    assert any(r["task"] == "claim" and r["namespace"] == scenario.ns for r in rows)

    ok(alice, "renew", "claim")
    wait_for(
        lambda: scenario.status("claim")["credentials"][0]["renewals"] >= 1,
        30,
        "the requested renewal",
    )
    assert EventReason.RENEW_REQUESTED in scenario.event_reasons("claim")

    assert alice.run("status", "nope").returncode == 3  # not found
    assert alice.run("end", "claim", "--failed").returncode == 2  # usage: no --reason
    refused = alice.run("quarantine", "--namespace", scenario.ns, "--reason", "x")
    assert refused.returncode == 4  # a tenant may not quarantine
    assert alice.run("lift", "anything").returncode == 4

    ok(alice, "end", "claim")
    scenario.wait_phase("claim", "Succeeded", 30)
    postgres.wait_refused(testbed_env, data, 15)

    text = "\n".join(outputs)
    for value in data.values():
        assert value not in text, "a credential value appeared in the plugin's output"
