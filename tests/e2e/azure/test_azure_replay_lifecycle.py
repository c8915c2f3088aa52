"""The operator's whole Azure Key Vault lifecycle against real recorded Azure answers.

The real operator (a child process, started per test) reads through the real SDK and
``DefaultAzureCredential`` from the replay (support.azure_replay), configured the way a
user configures it for a vault outside Azure's domains: ``AGENTCRED_AZURE_API_VERSION``
set to the recordings' api-version, ``AGENTCRED_AZURE_CA_BUNDLE`` to the replay's CA,
``AGENTCRED_AZURE_VERIFY_CHALLENGE_RESOURCE=false``, and the managed-identity token
endpoint through ``AZURE_POD_IDENTITY_AUTHORITY_HOST``. Every request it sends must be
one Azure answered on the recording day (the ``azure_replay`` fixture fails the test
otherwise), and every secret value in the recordings counts as a credential value
for the leak scan (logs, Events, status) at teardown.

The vault's address and the allow-list are the platform's: a cluster-scoped
``CredentialBackend`` per test selecting only the test's namespace. The tenant's
``AgentCredential`` names the secret (and optionally a version) through ``backendRef``.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from recorded import (
    CRUD,
    CRUD_EXPIRES,
    CRUD_ID,
    CRUD_VALUE,
    CRUD_VERSION,
    DISABLED,
    JS_API_VERSION,
    MISSING,
    PYTHON_API_VERSION,
)

from agentcred.models.api_names import Annotation, EventReason, Reason
from support.azure_replay import AzureReplay
from support.kube import wait_for
from support.leaks import assert_no_leaks
from support.operator import OperatorProcess, operator_env, running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e

StartOperator = Callable[..., OperatorProcess]
# What the platform allows the test namespace to read: the recorded secrets of the
# Python recordings and the 404 one; the JS disabled secret only where a test says so.
ALLOWED = ("livekvtest*", MISSING)


@pytest.fixture
def scenario(kube: client.ApiClient, namespace: str, azure_replay: AzureReplay) -> Scenario:
    scene = Scenario(kube, namespace)
    # Every value Azure sent in the recordings is a credential value: it may reach the
    # generated Secret and nothing else.
    scene.values.update(azure_replay.recordings.secret_values)
    return scene


@pytest.fixture
def start_operator(
    testbed_env: dict[str, str],
    namespace: str,
    crds: None,
    tmp_path: Path,
    azure_replay: AzureReplay,
    scenario: Scenario,
) -> Iterator[StartOperator]:
    """Starts the operator for this namespace, talking to the replay with ``api_version``;
    at the end stops it and scans its output, the Events and the status for values."""
    started: list[OperatorProcess] = []
    with contextlib.ExitStack() as running:

        def start(api_version: str = PYTHON_API_VERSION) -> OperatorProcess:
            env = {**operator_env(testbed_env), **azure_replay.operator_env(api_version)}
            log = tmp_path / f"operator-{len(started)}.log"
            started.append(
                running.enter_context(running_operator(env, log, "--namespace", namespace))
            )
            return started[-1]

        yield start
        assert_no_leaks(scenario, started)


@pytest.fixture
def allowed_secrets() -> tuple[str, ...]:
    """The backend's allow-list; a test widens it by parametrizing this fixture."""
    return ALLOWED


@pytest.fixture
def backend_name(
    scenario: Scenario, azure_replay: AzureReplay, allowed_secrets: tuple[str, ...]
) -> str:
    """The test's CredentialBackend: the replay's vault and ``allowed_secrets``, for the
    test namespace only, https required as in production (the namespace fixture deletes it)."""
    block = {"vaultUrl": azure_replay.vault_url, "allowedSecrets": list(allowed_secrets)}
    return scenario.backend("azureKeyVault", block, allowInsecureHTTP=False)


def azure_credential(
    scene: Scenario, backend: str, name: str, version: str | None = None, **extra: Any
) -> None:
    """The AgentCredential ``llm``: the recorded secret ``name`` through ``backend``."""
    block: dict[str, Any] = {"name": name}
    if version is not None:
        block["version"] = version
    scene.credential("llm", backend=backend, azureKeyVault=block, **extra)


def condition(status: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    found = [c for c in status.get("conditions") or [] if c.get("type") == kind]
    assert found, f"no {kind} condition in {status}"
    return dict(found[0])


def warnings(scene: Scenario, task: str, reason: str) -> list[str]:
    return [e.message for e in scene.events(task) if e.reason == reason]


def test_a_task_gets_the_recorded_latest_value_and_loses_it_when_done(
    scenario: Scenario,
    azure_replay: AzureReplay,
    start_operator: StartOperator,
    backend_name: str,
) -> None:
    start_operator()
    azure_credential(scenario, backend_name, CRUD, refreshInterval="30s")
    scenario.task("claim", ["llm"])
    status = scenario.wait_phase("claim", "Active")

    assert scenario.read_secret("claim-llm") == {"value": CRUD_VALUE}
    entry = status["credentials"][0]
    assert entry["backend"] == "azureKeyVault" and entry["state"] == "Issued"
    assert entry["leaseId"] == CRUD_ID  # the recorded id: version included
    expires = datetime.datetime.fromisoformat(entry["expiresAt"].replace("Z", "+00:00"))
    assert expires == CRUD_EXPIRES  # the version's recorded exp
    secret = scenario.secret_object("claim-llm")
    assert secret.metadata.annotations[Annotation.EXPIRES_AT]
    assert EventReason.ISSUED in scenario.event_reasons("claim")
    assert azure_replay.served("GET", f"/secrets/{CRUD}/") >= 1

    scenario.patch_task("claim", {"completed": True})
    scenario.wait_phase("claim", "Succeeded")
    wait_for(lambda: scenario.read_secret("claim-llm") is None, 30, "Secret deleted")


def test_a_pinned_version_is_read_by_its_own_path(
    scenario: Scenario,
    azure_replay: AzureReplay,
    start_operator: StartOperator,
    backend_name: str,
) -> None:
    start_operator()
    azure_credential(scenario, backend_name, CRUD, version=CRUD_VERSION)
    scenario.task("pinned", ["llm"])
    status = scenario.wait_phase("pinned", "Active")

    assert scenario.read_secret("pinned-llm") == {"value": CRUD_VALUE}
    assert status["credentials"][0]["leaseId"] == CRUD_ID
    assert azure_replay.served("GET", f"/secrets/{CRUD}/{CRUD_VERSION}") >= 1
    assert azure_replay.served("GET", f"/secrets/{CRUD}/") == 0


def test_refresh_re_reads_the_recorded_answer(
    scenario: Scenario,
    azure_replay: AzureReplay,
    start_operator: StartOperator,
    backend_name: str,
) -> None:
    start_operator()
    azure_credential(scenario, backend_name, CRUD, refreshInterval="10s")  # the floor
    scenario.task("refreshed", ["llm"])
    scenario.wait_phase("refreshed", "Active")

    wait_for(
        lambda: scenario.status("refreshed")["credentials"][0].get("renewals", 0) >= 2,
        45,
        "two refreshes recorded in the task's status",
    )
    refreshes = scenario.status("refreshed")["credentials"][0]["renewals"]
    # The issue and every refresh since were each a read of the vault, answered as recorded.
    assert azure_replay.served("GET", f"/secrets/{CRUD}/") >= 1 + refreshes
    assert scenario.read_secret("refreshed-llm") == {"value": CRUD_VALUE}
    assert scenario.status("refreshed")["phase"] == "Active"


def assert_failed_visibly(scenario: Scenario, task: str, reason: str, says: str) -> None:
    """The task ended Failed with ``reason``, and says so (``says``) in its message, its
    Ready condition and an IssueFailed Warning; no Secret was written."""
    status = scenario.wait_phase(task, "Failed")
    assert status["reason"] == reason, status
    assert says in status["message"]
    ready = condition(status)
    assert (ready["status"], ready["reason"]) == ("False", reason)
    events = warnings(scenario, task, EventReason.ISSUE_FAILED)
    assert any(says in m for m in events), events
    assert scenario.read_secret(f"{task}-llm") is None


def test_a_missing_secret_fails_the_task_with_not_found(
    scenario: Scenario,
    azure_replay: AzureReplay,
    start_operator: StartOperator,
    backend_name: str,
) -> None:
    start_operator()
    azure_credential(scenario, backend_name, MISSING)
    scenario.task("missing", ["llm"])
    assert_failed_visibly(scenario, "missing", "NotFound", Reason.SECRET_NOT_FOUND)
    assert azure_replay.served("GET", f"/secrets/{MISSING}/", status=404) >= 1


@pytest.mark.parametrize("allowed_secrets", [(*ALLOWED, "CRUDSecretName-*")], ids=["allowed"])
def test_a_disabled_secret_is_never_served_and_fails_the_task(
    scenario: Scenario,
    azure_replay: AzureReplay,
    start_operator: StartOperator,
    backend_name: str,
) -> None:
    start_operator(JS_API_VERSION)  # the only recording of a disabled secret is the JS SDK's
    azure_credential(scenario, backend_name, DISABLED)
    scenario.task("disabled", ["llm"])
    assert_failed_visibly(scenario, "disabled", "InvalidConfig", "disabled secret")
    assert azure_replay.served("GET", f"/secrets/{DISABLED}/", status=403) >= 1


def test_a_secret_outside_the_allow_list_is_refused_without_asking_azure(
    scenario: Scenario,
    azure_replay: AzureReplay,
    start_operator: StartOperator,
    backend_name: str,
) -> None:
    start_operator()
    # A recorded secret, but not one the platform lets this namespace read.
    azure_credential(scenario, backend_name, DISABLED)
    scenario.task("outside", ["llm"])
    status = scenario.wait_phase("outside", "Failed")

    assert status["reason"] == Reason.NOT_ALLOWED, status
    assert "allow-list" in status["message"] and "spec.azureKeyVault.name" in status["message"]
    events = warnings(scenario, "outside", EventReason.ISSUE_FAILED)
    assert any("allow-list" in m for m in events), events
    assert scenario.read_secret("outside-llm") is None
    asked = [e.key for e in azure_replay.exchanges() if DISABLED in e.key.path]
    assert asked == [], f"the vault was asked for a secret outside the allow-list: {asked}"
