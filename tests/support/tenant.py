"""Act as a tenant: a user holding only the RBAC the README tells platform teams to grant.

The admin's client impersonates the user (``Impersonate-User``), the way
``kubectl --as`` does, so every request is authorized as that user alone.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

from agentcred.models.api_names import API_VERSION, Annotation
from support.kube import REPO, create, wait_for

PROBE_USER = "agentcred-policy-probe"


def as_user(kubeconfig: str, user: str) -> client.ApiClient:
    api = config.new_client_from_config(config_file=kubeconfig)
    api.set_default_header("Impersonate-User", user)
    return api


def grant_tenant(admin: client.ApiClient, namespace: str, user: str) -> str:
    """README: bind ClusterRole agentcred-tenant to the tenant in their namespace.
    Returns the RoleBinding's name."""
    name = f"{user}-tenant"
    _bind(admin, namespace, name, "ClusterRole", "agentcred-tenant", user)
    return name


def grant_impersonation(
    admin: client.ApiClient, namespace: str, user: str, service_accounts: list[str]
) -> None:
    """README: a launcher may start tasks as exactly these ServiceAccounts."""
    rbac = client.RbacAuthorizationV1Api(admin)
    name = f"{user}-launch-" + "-".join(service_accounts)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["serviceaccounts"],
                    "resourceNames": service_accounts,
                    "verbs": ["impersonate"],
                }
            ],
        },
    )
    _bind(admin, namespace, name, "Role", name, user)


def _bind(
    admin: client.ApiClient, namespace: str, name: str, kind: str, role: str, user: str
) -> None:
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(namespace, body)


SHIPPED = [
    REPO / "manifests" / "base" / "admission.yaml",
    REPO / "manifests" / "base" / "approval-admission.yaml",
    REPO / "manifests" / "base" / "tenant-roles.yaml",
    REPO / "manifests" / "base" / "incident-roles.yaml",
]


def wait_policy_enforced(admin: client.ApiClient, kubeconfig: str) -> None:
    """Wait until the API server enforces the shipped task policies: a user who may
    create AgentTasks in ``default`` but impersonate no ServiceAccount is refused a task
    (manifests/base/admission.yaml), and the admin's task comes back stamped with its
    creator (approval-admission.yaml); dry runs, nothing is written. Policies are compiled
    from an informer (about a second after they are written); a test that creates a task
    sooner would see it admitted and denied by the backend instead."""
    binding = grant_tenant(admin, "default", PROBE_USER)
    probe = as_user(kubeconfig, PROBE_USER)
    task = {
        "apiVersion": API_VERSION,
        "kind": "AgentTask",
        "metadata": {"generateName": "policy-probe-"},
        "spec": {"serviceAccountName": "default", "credentials": [{"name": "probe"}]},
    }

    def refused() -> bool:
        try:
            create(probe, "default", task, dry_run=True)
        except client.ApiException as exc:  # RBAC not in effect yet says "cannot create"
            return exc.status == 403 and "may not impersonate" in str(exc.body)
        return False  # admitted: the policy is not in effect yet

    def stamped() -> bool:
        try:
            created = create(admin, "default", task, dry_run=True)
        except client.ApiException:  # the stamp check before the stamp is put
            return False
        return Annotation.CREATED_BY in (created["metadata"].get("annotations") or {})

    try:
        wait_for(refused, 60, "the shipped admission policy to be enforced")
        wait_for(stamped, 60, "the shipped creator stamp to be put on tasks")
    finally:
        probe.close()
        client.RbacAuthorizationV1Api(admin).delete_namespaced_role_binding(binding, "default")
