"""Act as a tenant: a user holding only the RBAC the README tells platform teams to grant.

The admin's client impersonates the user (``Impersonate-User``), the way
``kubectl --as`` does, so every request is authorized as that user alone.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

from support.kube import REPO


def as_user(kubeconfig: str, user: str) -> client.ApiClient:
    api = config.new_client_from_config(config_file=kubeconfig)
    api.set_default_header("Impersonate-User", user)
    return api


def grant_tenant(admin: client.ApiClient, namespace: str, user: str) -> None:
    """README: bind ClusterRole agentcred-tenant to the tenant in their namespace."""
    _bind(admin, namespace, f"{user}-tenant", "ClusterRole", "agentcred-tenant", user)


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
