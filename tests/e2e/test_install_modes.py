"""Both install modes apply on a real API server, and the operator works under the
namespace-scoped install's own RBAC (a token of its ServiceAccount, not the admin's)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from support import postgres
from support.credentials import vault_database
from support.kube import REPO, wait_for
from support.kube import kubectl as run_kubectl
from support.leaks import assert_no_leaks
from support.operator import operator_env, running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e
SCOPED = REPO / "manifests" / "overlays" / "namespaced"


def kubectl(env: dict[str, str], *args: str) -> str:
    result = run_kubectl(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def overlay_namespaces(kube: client.ApiClient) -> Iterator[None]:
    """The namespaces the overlay names; those this test created are deleted afterwards
    (``make dev`` may have made team-a already: it stays)."""
    core, created = client.CoreV1Api(kube), []
    for name in ("agentcred-system", "team-a", "team-b"):
        try:
            core.create_namespace({"metadata": {"name": name}})
            created.append(name)
        except ApiException as exc:
            if exc.status != 409:
                raise
    yield
    for name in created:
        core.delete_namespace(name)


def test_the_namespace_scoped_overlay_passes_server_side_dry_run(
    testbed_env: dict[str, str], crds: None, overlay_namespaces: None
) -> None:
    out = kubectl(testbed_env, "apply", "-k", str(SCOPED), "--dry-run=server")
    assert "role.rbac.authorization.k8s.io/agentcred-operator" in out
    rendered = list(yaml.safe_load_all(kubectl(testbed_env, "kustomize", str(SCOPED))))
    [cluster_role] = [
        d
        for d in rendered
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "agentcred-operator"
    ]
    granted = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert not granted & {"secrets", "pods", "serviceaccounts", "serviceaccounts/token"}, granted
    [deployment] = [d for d in rendered if d["kind"] == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AGENTCRED_NAMESPACES"] == "team-a,team-b"


def scoped_rbac_for(testbed_env: dict[str, str], namespace: str) -> list[dict[str, Any]]:
    """The overlay's RBAC, with its first served namespace renamed to the test's."""
    rendered = yaml.safe_load_all(kubectl(testbed_env, "kustomize", str(SCOPED)))
    kept: list[dict[str, Any]] = []
    for doc in rendered:
        if doc["kind"] not in (
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ):
            continue
        cluster_wide = doc["kind"].startswith("Cluster")
        if cluster_wide and doc["metadata"]["name"] != "agentcred-operator":
            continue
        ns = doc["metadata"].get("namespace")
        if ns == "team-b":
            continue
        if ns == "team-a":
            doc["metadata"]["namespace"] = namespace
        kept.append(doc)
    return kept


def token_kubeconfig(kube: client.ApiClient, env: dict[str, str], folder: Path) -> Path:
    token = (
        client.CoreV1Api(kube)
        .create_namespaced_service_account_token(
            "agentcred", env["AGENTCRED_NAMESPACE"], {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "t",
                "cluster": {
                    "server": env["KUBE_API_SERVER"],
                    "certificate-authority": env["KUBE_CA_FILE"],
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "operator"}}],
        "current-context": "t",
    }
    path = folder / "scoped-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_operator_works_under_the_namespace_scoped_rbac(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    docs = scoped_rbac_for(testbed_env, scene.ns)
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    kubectl(testbed_env, "apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    kubeconfig = token_kubeconfig(scene.api, testbed_env, tmp_path)
    account = vault_database(scene, testbed_env)
    env = {**operator_env(testbed_env), "KUBECONFIG": str(kubeconfig)}
    with running_operator(env, tmp_path / "op.log", "--namespace", scene.ns) as op:
        _, data = scene.issue("scoped", "db", serviceAccountName=account)
        assert postgres.can_login(testbed_env, data["username"], data["password"])
        scene.complete("scoped")
        wait_for(lambda: scene.read_secret("scoped-db") is None, 30, "Secret deleted")
        postgres.wait_refused(testbed_env, data, 30, "lease revoked")
        forbidden = [line for line in op.log_lines() if re.search(r"\b403\b|Forbidden", line)]
        assert forbidden == [], forbidden[:3]
    assert_no_leaks(scene, [op])
