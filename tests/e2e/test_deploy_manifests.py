"""``kubectl apply -k manifests/ --dry-run=server`` passes against the real apiserver."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from support.kube import REPO, kubectl

pytestmark = pytest.mark.e2e


def test_kustomize_base_passes_server_side_dry_run(
    kube: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    # Server-side dry-run of namespaced objects needs their namespace to exist.
    try:
        client.CoreV1Api(kube).create_namespace({"metadata": {"name": "agentcred-system"}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    result = kubectl(testbed_env, "apply", "-k", str(REPO / "manifests"), "--dry-run=server")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for kind_name in (
        "customresourcedefinition.apiextensions.k8s.io/agenttasks.agentcred.io",
        "serviceaccount/agentcred",
        "deployment.apps/agentcred-operator",
        "clusterrole.rbac.authorization.k8s.io/agentcred-operator",
        "validatingadmissionpolicy.admissionregistration.k8s.io/agentcred-task-serviceaccount",
        "clusterrole.rbac.authorization.k8s.io/agentcred-tenant",
    ):
        assert kind_name in out, out


def test_deployment_runs_non_root_with_a_read_only_root_filesystem() -> None:
    deployment = yaml.safe_load((REPO / "manifests" / "base" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]
