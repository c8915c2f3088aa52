"""The adversarial suite: the lifecycle fixtures (operator per test, leak scan) plus the
shipped admission policy and tenant roles, a tenant identity and an attacker's host."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))

from agentcred.models.api_names import GROUP, VERSION, Plural
from e2e.lifecycle.conftest import operator, scenario
from support.kube import wait_for
from support.listener import Listener, listening
from support.plugin import User, bind_cluster_role, person, wait_allowed
from support.tenant import SHIPPED, as_user, grant_tenant, wait_policy_enforced

__all__ = ["operator", "scenario"]
TENANT = "alice"


@pytest.fixture(scope="session")
def shipped_policy(testbed_env: dict[str, str], crds: None, kube: client.ApiClient) -> None:
    """manifests/base/admission.yaml and tenant-roles.yaml, applied as a platform team
    would, and in effect (a task created right after the apply could be admitted)."""
    args = [testbed_env["KUBECTL"], "--kubeconfig", testbed_env["KUBECONFIG"], "apply"]
    for path in SHIPPED:
        args += ["-f", str(path)]
    subprocess.run([*args, "--server-side", "--force-conflicts"], check=True, capture_output=True)
    wait_policy_enforced(kube, testbed_env["KUBECONFIG"])


@pytest.fixture
def tenant(
    kube: client.ApiClient, namespace: str, testbed_env: dict[str, str], shipped_policy: None
) -> Iterator[client.ApiClient]:
    """The tenant's client: only agentcred-tenant in its namespace (README)."""
    grant_tenant(kube, namespace, TENANT)
    api = as_user(testbed_env["KUBECONFIG"], TENANT)
    # RBAC is evaluated from an informer cache: wait until the binding is in effect.
    wait_for(lambda: _can_list_tasks(api, namespace), 30, "the tenant's RoleBinding to take effect")
    yield api
    api.close()


def _can_list_tasks(api: client.ApiClient, namespace: str) -> bool:
    try:
        client.CustomObjectsApi(api).list_namespaced_custom_object(
            "agentcred.io", "v1alpha1", namespace, "agenttasks"
        )
    except client.ApiException:
        return False
    return True


@pytest.fixture
def attacker() -> Iterator[Listener]:
    with listening() as listener:
        yield listener


@pytest.fixture
def responder(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    namespace: str,
    shipped_policy: None,
    tmp_path: Path,
) -> Iterator[User]:
    """A person holding only agentcred-incident-responder (cluster-wide). A test that
    failed before lifting its quarantine has it lifted here (it names this namespace)."""
    user = person(kube, testbed_env["KUBECONFIG"], namespace, "responder", tmp_path)
    binding = bind_cluster_role(kube, "agentcred-incident-responder", user)
    wait_allowed(user, "leases", "-n", namespace)
    yield user
    client.RbacAuthorizationV1Api(kube).delete_cluster_role_binding(binding)
    custom = client.CustomObjectsApi(kube)
    for item in custom.list_cluster_custom_object(GROUP, VERSION, Plural.QUARANTINES)["items"]:
        name = item["metadata"]["name"]
        if namespace in json.dumps(item.get("spec")) or name.startswith(namespace):
            custom.delete_cluster_custom_object(GROUP, VERSION, Plural.QUARANTINES, name)
