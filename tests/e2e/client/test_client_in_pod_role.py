"""The Role docs/client.md gives an agent that opens its own tasks (examples/client/
rbac.yaml, agent-sessions) is enough, and no more: as that ServiceAccount the client runs
a session end to end, and cannot start a task as another ServiceAccount."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable

import pytest
from kubernetes import client
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration

from agentcred_client import AgentTasks, TaskFailed
from e2e.security.conftest import shipped_policy
from support.credentials import vault_database
from support.kube import REPO, wait_for
from support.scenario import Scenario
from support.tenant import as_user

__all__ = ["shipped_policy"]
pytestmark = pytest.mark.e2e
AGENT = "research-agent"


def _as(kubeconfig: str, user: str) -> Callable[[], Awaitable[ApiClient]]:
    """An ApiClient factory acting as ``user`` (``Impersonate-User``, as ``kubectl --as``)."""

    async def make() -> ApiClient:
        configuration = Configuration()
        await config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
        api = ApiClient(configuration)
        api.set_default_header("Impersonate-User", user)
        return api

    return make


def _may_list_tasks(kubeconfig: str, user: str, namespace: str) -> bool:
    api = as_user(kubeconfig, user)
    try:
        client.CustomObjectsApi(api).list_namespaced_custom_object(
            "agentcred.io", "v1alpha1", namespace, "agenttasks"
        )
    except client.ApiException:
        return False
    finally:
        api.close()
    return True


def test_the_documented_role_runs_a_session_as_the_agent_and_no_other_account(
    scenario: Scenario, testbed_env: dict[str, str], shipped_policy: None
) -> None:
    vault_database(scenario, testbed_env, "research-db", account=AGENT)
    scenario.service_account("other-agent")
    kubectl = [testbed_env["KUBECTL"], "--kubeconfig", testbed_env["KUBECONFIG"]]
    rbac = REPO / "examples" / "client" / "rbac.yaml"
    subprocess.run([*kubectl, "apply", "-n", scenario.ns, "-f", str(rbac)], check=True)
    user = f"system:serviceaccount:{scenario.ns}:{AGENT}"
    wait_for(
        lambda: _may_list_tasks(testbed_env["KUBECONFIG"], user, scenario.ns),
        30,
        "the agent's RoleBinding to take effect",
    )

    with AgentTasks(scenario.ns, api=_as(testbed_env["KUBECONFIG"], user)) as tasks:
        with tasks.run(["research-db"], AGENT, wait_revoked=True) as t:
            assert set(t.secret("research-db")) >= {"username", "password"}
        assert scenario.status(t.name)["phase"] == "Succeeded"

        with pytest.raises(TaskFailed) as refused, tasks.run(["research-db"], "other-agent"):
            raise AssertionError("not reached")
    # Refused at admission (the shipped policy), not admitted and then denied by Vault.
    assert refused.value.reason == "Forbidden", refused.value
    assert "may not impersonate" in refused.value.message
