"""Run ``kubectl agentcred`` as a person would: the installed console script in a
subprocess, with a kubeconfig of their own.

The person is a ServiceAccount of the test's namespace holding only the shipped roles a
platform team binds (``bind_cluster_role``: a RoleBinding in the namespace, or a
ClusterRoleBinding for a cluster-wide role such as agentcred-incident-responder), logged
in with a short TokenRequest token: a real, limited identity, not the admin's.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from support.kube import REPO, wait_for

PLUGIN = REPO / ".venv" / "bin" / "kubectl-agentcred"


@dataclass(frozen=True)
class User:
    name: str  # system:serviceaccount:<ns>:<sa>
    kubeconfig: Path

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        return subprocess.run(
            [str(PLUGIN), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )


def person(
    admin: client.ApiClient, admin_kubeconfig: str, namespace: str, name: str, folder: Path
) -> User:
    """ServiceAccount ``name`` in ``namespace`` and a kubeconfig logging in as it."""
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 1800}}
    ).status.token
    config: dict[str, Any] = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = config["clusters"][0]
    path = folder / f"{name}.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": name,
                        "context": {
                            "cluster": cluster["name"],
                            "user": name,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": name,
            }
        )
    )
    return User(f"system:serviceaccount:{namespace}:{name}", path)


def bind_cluster_role(
    admin: client.ApiClient, role: str, user: User, namespace: str | None = None
) -> str:
    """Bind ClusterRole ``role`` to ``user``: in ``namespace``, or cluster-wide (returns
    the ClusterRoleBinding's name, for the caller to delete)."""
    _, _, ns, sa = user.name.split(":")
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": ns}
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
    rbac = client.RbacAuthorizationV1Api(admin)
    name = f"{role}-{ns}-{sa}"
    body = {"metadata": {"name": name}, "roleRef": ref, "subjects": [subject]}
    if namespace is not None:
        rbac.create_namespaced_role_binding(namespace, body)
    else:
        rbac.create_cluster_role_binding(body)
    return name


def wait_allowed(user: User, *args: str) -> None:
    """RBAC is evaluated from an informer cache: wait until ``args`` no longer exits 4."""
    wait_for(lambda: user.run(*args).returncode != 4, 30, f"{user.name} allowed {args}")
