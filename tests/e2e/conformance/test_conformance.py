"""One conformance suite for every backend, through the real operator and real servers.

Cases: issue (the Secret has the backend's keys), refresh (a rotated static value, or a
dynamic lease renewed/re-issued, reaches the Secret within one interval), not found,
denied, and backend stopped then restarted (the task waits, shows why, and recovers on
its own). Where an emulator cannot play a case (drongo has no IAM, so nothing is ever
denied; STS has no "missing secret"), the pair is left out of the matrix below, and the
error mapping for it is covered by the backend's unit tests. Azure Key Vault runs the
same cases in tests/azure when a Lowkey Vault jar is supplied (make test-azure).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import (
    AwsSecretsManager,
    AwsSts,
    Backend,
    GcpSecretManager,
    VaultDynamic,
    VaultKV,
    address_via,
    private_server,
)

from agentcred.models.api_names import EventReason, Reason
from agentcred_testbed.procs import free_port
from support.kube import wait_for
from support.operator import OperatorProcess
from support.proxy import Forwarder
from support.scenario import Scenario

pytestmark = pytest.mark.e2e
ALL: list[Backend] = [VaultDynamic(), VaultKV(), AwsSecretsManager(), AwsSts(), GcpSecretManager()]
MISSING = [b for b in ALL if b.name != "aws-sts"]
DENIED = [b for b in ALL if b.name != "gcp-secret-manager"]


def ids(backends: list[Backend]) -> list[str]:
    return [b.name for b in backends]


@pytest.fixture
def agent_name() -> str:
    return "agent"


@pytest.mark.parametrize("backend", ALL, ids=ids(ALL))
def test_issue_fills_the_secret_with_the_backends_keys(
    backend: Backend, scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    scenario.credential("cred", **backend.credential(scenario, testbed_env))
    scenario.task("task", ["cred"], serviceAccountName="agent")
    status = scenario.wait_phase("task", "Active")
    data = scenario.read_secret("task-cred")
    assert data is not None and backend.keys <= set(data)
    entry = status["credentials"][0]
    assert entry["state"] == "Issued" and entry["leaseId"]


@pytest.mark.parametrize("backend", ALL, ids=ids(ALL))
def test_refresh_reaches_the_secret_within_one_interval(
    backend: Backend, scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    # The floors: refreshInterval >= 10 s, ttl >= 60 s (a Vault lease renews at 50 %: 30 s).
    timing = {"refreshInterval": "10s"} if backend.static else {"ttl": "60s", "renewalPercent": 50}
    if backend.name == "aws-sts":
        timing = {}  # STS sessions last >= 900 s: exercised by re-issue in the STS backend tests
    scenario.credential("cred", **backend.credential(scenario, testbed_env, **timing))
    scenario.task("task", ["cred"], serviceAccountName="agent")
    scenario.wait_phase("task", "Active")
    before = scenario.read_secret("task-cred")
    assert before is not None
    if backend.static:
        rotated = backend.rotate(testbed_env)
        wait_for(
            lambda: (
                (d := scenario.read_secret("task-cred")) is not None
                and all(d.get(k) == v for k, v in rotated.items())
            ),
            # One interval, plus slack for a loaded 2-core machine (seen: 5 s was not enough
            # while four other test runs shared it); a refresh that never comes still fails.
            10 + 10,
            "rotated value in the Secret within one interval (+ slack)",
        )
    elif timing:
        wait_for(
            lambda: (
                (e := scenario.status("task")["credentials"][0]).get("renewals", 0)
                + e.get("reissues", 0)
                >= 1
            ),
            60,
            "lease renewed or re-issued within its TTL",
        )
    else:
        entry = scenario.status("task")["credentials"][0]
        assert entry["renewAt"] < entry["expiresAt"], "re-issue scheduled before expiry"


@pytest.mark.parametrize("backend", MISSING, ids=ids(MISSING))
def test_missing_secret_fails_the_task_with_not_found(
    backend: Backend, scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    scenario.service_account("agent")
    scenario.credential("cred", **backend.missing(scenario, testbed_env))
    scenario.task("task", ["cred"], serviceAccountName="agent")
    status = scenario.wait_phase("task", "Failed")
    assert status["reason"] == Reason.NOT_FOUND, status
    assert EventReason.ISSUE_FAILED in scenario.event_reasons("task")


@pytest.fixture(autouse=True)
def stop_private_servers() -> Iterator[None]:
    yield
    for backend in ALL:
        backend.cleanup()


@pytest.mark.parametrize("backend", DENIED, ids=ids(DENIED))
def test_denied_identity_fails_the_task_with_denied(
    backend: Backend, scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    if backend.name.startswith("aws"):  # (Vault's denied() makes its own)
        scenario.service_account("intruder")
    scenario.credential("cred", **backend.denied(scenario, testbed_env))
    scenario.task("task", ["cred"], serviceAccountName="intruder")
    status = scenario.wait_phase("task", "Failed")
    assert status["reason"] == Reason.DENIED, status


@pytest.fixture
def private(
    request: pytest.FixtureRequest, testbed_env: dict[str, str], tmp_path: Path
) -> Iterator[object]:
    server = private_server(request.param, testbed_env, tmp_path)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("backend", "private"), [(b, b) for b in ALL], ids=ids(ALL), indirect=["private"]
)
def test_backend_down_then_back_the_task_waits_shows_why_and_recovers(
    backend: Backend,
    private: object,
    scenario: Scenario,
    testbed_env: dict[str, str],
    operator: OperatorProcess,
) -> None:
    """The operator talks to a private server through a forwarder that stays closed while
    the server is stopped and restarted (and set up again), then opens."""
    server = private
    front = Forwarder(free_port())
    spec = backend.credential(scenario, testbed_env)
    server_env = server.start()  # type: ignore[attr-defined]
    backend.point_at(scenario, spec, address_via(server_env, front.port))
    server.stop()  # type: ignore[attr-defined]
    scenario.credential("cred", **spec)
    scenario.task("task", ["cred"], serviceAccountName="agent")
    cond = scenario.wait_condition("task", Reason.BACKEND_UNAVAILABLE)
    assert cond["status"] == "False" and scenario.status("task")["phase"] == "Pending"
    restarted = server.start()  # type: ignore[attr-defined]
    backend.seed(scenario, restarted)
    front.open(server.port)  # type: ignore[attr-defined]
    try:
        scenario.wait_phase("task", "Active", timeout=150)
        data = scenario.read_secret("task-cred")
        assert data is not None and backend.keys <= set(data)
        assert operator.proc.poll() is None
    finally:
        front.close()
