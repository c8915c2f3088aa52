"""The Helm chart, proven with a real helm (built by scripts/build-tools.sh).

* ``helm lint --strict`` with the default values and with every toggle on;
* one source of truth: the default render equals ``kubectl kustomize manifests/``
  object for object, after removing only what Helm conventionally adds (the labels
  ``app.kubernetes.io/instance`` -- also in the selector --, ``app.kubernetes.io/
  managed-by``, ``app.kubernetes.io/version``, ``helm.sh/chart`` and the CRDs'
  ``helm.sh/resource-policy: keep``); the Namespace is compared with
  ``namespace.create=true`` (by default ``helm install --create-namespace`` owns it);
* ``watchNamespaces`` renders exactly ``kubectl kustomize manifests/overlays/namespaced``
  (the namespace-scoped install: Roles in the served namespaces, a ClusterRole with only
  cluster-scoped rights); the shipped alerts and dashboard are the files in monitoring/;
* ``helm template | kubectl apply --dry-run=server`` against the testbed API server, and
  ``helm install`` / ``upgrade`` / ``uninstall`` against it (there is no node: the
  operator pod never runs, the test checks the objects).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred_testbed import kube as testbed_kube
from support.kube import REPO, wait_for
from support.monitoring import DASHBOARD, rule_groups

CHART = REPO / "charts" / "agentcred"
HELM_LABELS = (
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
)
EVERYTHING_ON = [
    "--set=metrics.serviceMonitor.enabled=true",
    "--set=prometheusRule.enabled=true",
    "--set=grafanaDashboard.enabled=true",
    "--set=podDisruptionBudget.enabled=true",
    "--set=namespace.create=true",
    "--set=logLevel=DEBUG",
    "--set=watchNamespaces={team-a,team-b}",
    "--set=extraEnv[0].name=AGENTCRED_SWEEP_INTERVAL",
    "--set=extraEnv[0].value=30s",
]
# kustomize's namespace transformer does not know these are cluster-scoped and stamps
# the namespace on them; the API server ignores it. The chart leaves it out.
# Kinds kustomize does not know are cluster-scoped: its namespace transformer stamps them.
CLUSTER_SCOPED_KINDS = {
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
}


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Helm's own cache/config/data dirs in a scratch folder, not in $HOME."""
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def run(cmd: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(
        cmd, env=env, input=stdin, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def render(helm: Path, env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    out = run(
        [str(helm), "template", "agentcred", str(CHART), "--namespace", "agentcred-system", *args],
        env,
    )
    return [d for d in yaml.safe_load_all(out) if d]


def key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    ns = "" if obj["kind"] in CLUSTER_SCOPED_KINDS else meta.get("namespace", "")
    return (obj["apiVersion"], obj["kind"], ns, meta["name"])


def without_helm_additions(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)

    def strip(labels: dict[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (labels or {}).items() if k not in HELM_LABELS}

    meta = obj["metadata"]
    if obj["kind"] in CLUSTER_SCOPED_KINDS:
        meta.pop("namespace", None)
    meta["labels"] = strip(meta.get("labels"))
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != "helm.sh/resource-policy"
    }
    meta["annotations"] = annotations
    if obj["kind"] in ("Deployment", "PodDisruptionBudget"):
        spec = obj["spec"]
        spec["selector"]["matchLabels"] = strip(spec["selector"]["matchLabels"])
    if obj["kind"] == "Deployment":
        spec["template"]["metadata"]["labels"] = strip(spec["template"]["metadata"]["labels"])
    for field in ("labels", "annotations"):
        if not meta[field]:
            del meta[field]
    return obj


def by_key(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {key(o): without_helm_additions(o) for o in objs}


def kustomize(path: str = "") -> list[dict[str, Any]]:
    kubectl = testbed_kube.find_kubectl(testbed_kube.find_binaries())
    out = run([str(kubectl), "kustomize", str(REPO / "manifests" / path)], dict(os.environ))
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_lints_strictly(helm: Path, helm_env: dict[str, str]) -> None:
    for args in ([], EVERYTHING_ON):
        out = run([str(helm), "lint", "--strict", str(CHART), *args], helm_env)
        assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_default_render_is_the_kustomize_base(helm: Path, helm_env: dict[str, str]) -> None:
    base = by_key(kustomize())
    chart = by_key(render(helm, helm_env))
    namespaces = {k for k in base if k[1] == "Namespace"}
    assert namespaces, "the kustomize base has no Namespace any more: update this test"
    assert set(chart) == set(base) - namespaces
    for k, obj in chart.items():
        assert obj == base[k], f"{k} differs between the chart and manifests/"
    with_ns = by_key(render(helm, helm_env, "--set=namespace.create=true"))
    for k in namespaces:
        assert with_ns[k] == base[k], f"{k} differs between the chart and manifests/"


def test_packaged_chart_carries_the_symlinked_sources(
    helm: Path, helm_env: dict[str, str], tmp_path: Path
) -> None:
    """`helm package` resolves files/ (symlinks into crds/, manifests/, monitoring/)."""
    run([str(helm), "package", str(CHART), "--destination", str(tmp_path)], helm_env)
    (package,) = tmp_path.glob("agentcred-*.tgz")
    out = run(
        [
            str(helm),
            "template",
            "agentcred",
            str(package),
            "--namespace",
            "agentcred-system",
            *EVERYTHING_ON,
        ],
        helm_env,
    )
    assert [d for d in yaml.safe_load_all(out) if d] == render(helm, helm_env, *EVERYTHING_ON)


def test_chart_ships_the_monitoring_files(helm: Path, helm_env: dict[str, str]) -> None:
    objs = {o["kind"]: o for o in render(helm, helm_env, *EVERYTHING_ON)}
    assert objs["PrometheusRule"]["spec"] == rule_groups()
    dashboard = objs["ConfigMap"]["data"]["agentcred.json"]
    assert json.loads(dashboard) == json.loads(DASHBOARD.read_text())
    assert objs["ConfigMap"]["metadata"]["labels"]["grafana_dashboard"] == "1"
    monitor = objs["ServiceMonitor"]
    service = objs["Service"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert objs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    env = {
        e["name"]: e.get("value")
        for e in objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AGENTCRED_NAMESPACES"] == "team-a,team-b"
    assert env["AGENTCRED_LOG_LEVEL"] == "DEBUG"
    assert env["AGENTCRED_SWEEP_INTERVAL"] == "30s"


def test_scoped_render_is_the_namespaced_overlay(helm: Path, helm_env: dict[str, str]) -> None:
    """watchNamespaces is manifests/overlays/namespaced: the same objects, the same rules."""
    overlay = by_key(kustomize("overlays/namespaced"))
    chart = by_key(render(helm, helm_env, "--set=watchNamespaces={team-a,team-b}"))
    namespaces = {k for k in overlay if k[1] == "Namespace"}
    assert set(chart) == set(overlay) - namespaces
    for k, obj in chart.items():
        assert obj == overlay[k], f"{k} differs between the chart and the namespaced overlay"
    served = {k[2] for k in chart if k[1] == "Role"}
    assert served == {"team-a", "team-b", "agentcred-system"}


def test_the_operator_namespace_cannot_be_served(helm: Path, helm_env: dict[str, str]) -> None:
    result = subprocess.run(
        [
            str(helm),
            "template",
            "agentcred",
            str(CHART),
            "--namespace",
            "agentcred-system",
            "--set=watchNamespaces={team-a,agentcred-system}",
        ],
        env=helm_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "never serves its own namespace" in result.stderr


@pytest.fixture
def release_namespace(kube: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(kube)
    name = f"helm-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"agentcred.io/test": "true"}}})
    yield name
    core.delete_namespace(name)


def test_template_passes_a_server_side_dry_run(
    helm: Path,
    helm_env: dict[str, str],
    testbed_env: dict[str, str],
    crds: None,
    release_namespace: str,
) -> None:
    # Everything except the prometheus-operator kinds, whose CRDs the testbed lacks
    # (their content is checked above and by promtool).
    args = [a for a in EVERYTHING_ON if "serviceMonitor" not in a and "prometheusRule" not in a]
    args = [a for a in args if "namespace.create" not in a and "watchNamespaces" not in a]
    manifest = run(
        [
            str(helm),
            "template",
            "agentcred",
            str(CHART),
            "--namespace",
            release_namespace,
            "--set=watchNamespaces={default}",
            *args,
        ],
        helm_env,
    )
    out = run(
        [testbed_env["KUBECTL"], "apply", "--dry-run=server", "-f", "-"],
        {**helm_env, "KUBECONFIG": testbed_env["KUBECONFIG"]},
        stdin=manifest,
    )
    for expected in (
        "customresourcedefinition.apiextensions.k8s.io/agenttasks.agentcred.io",
        "deployment.apps/agentcred-operator",
        "clusterrole.rbac.authorization.k8s.io/agentcred-operator",
        "role.rbac.authorization.k8s.io/agentcred-operator",
        "poddisruptionbudget.policy/agentcred-operator",
        "configmap/agentcred-dashboard",
        "customresourcedefinition.apiextensions.k8s.io/credentialbackends.agentcred.io",
        "validatingadmissionpolicy.admissionregistration.k8s.io/agentcred-task-serviceaccount",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/agentcred-task-serviceaccount",
        "clusterrole.rbac.authorization.k8s.io/agentcred-tenant",
        "clusterrole.rbac.authorization.k8s.io/agentcred-viewer",
    ):
        assert expected in out, out


def test_install_upgrade_uninstall_against_the_testbed(
    helm: Path,
    helm_env: dict[str, str],
    testbed_env: dict[str, str],
    kube: client.ApiClient,
    crds: None,
    release_namespace: str,
) -> None:
    env = {**helm_env, "KUBECONFIG": testbed_env["KUBECONFIG"]}
    ns = release_namespace
    release = f"agentcred-{ns.removeprefix('helm-')}"
    operator_name = f"{release}-operator"
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    rbac, policy = client.RbacAuthorizationV1Api(kube), client.PolicyV1Api(kube)
    # Cluster-wide singletons that other suites (and `make dev`) put on the shared
    # testbed without Helm, which would refuse to adopt them: the CRDs, the admission
    # policy and the tenant and incident roles. Their templates are proven by the dry run above.
    base = [str(helm), "--namespace", ns]
    singletons = [
        "--set=crds.install=false",
        "--set=admissionPolicy.create=false",
        "--set=tenantRoles.create=false",
        "--set=incidentRoles.create=false",
    ]
    run([*base, "install", release, str(CHART), *singletons], env)

    deployment = apps.read_namespaced_deployment(operator_name, ns)
    container = deployment.spec.template.spec.containers[0]
    assert container.image == "ghcr.io/agentcred/agentcred:0.1.0"
    assert container.security_context.read_only_root_filesystem is True
    assert core.read_namespaced_service_account(release, ns)
    binding = rbac.read_cluster_role_binding(operator_name)
    assert binding.subjects[0].namespace == ns and binding.subjects[0].name == release
    assert rbac.read_namespaced_role(operator_name, ns)

    run(
        [
            *base,
            "upgrade",
            release,
            str(CHART),
            "--reuse-values",
            "--set=logLevel=DEBUG",
            "--set=podDisruptionBudget.enabled=true",
            "--set=grafanaDashboard.enabled=true",
        ],
        env,
    )
    deployment = apps.read_namespaced_deployment(operator_name, ns)
    env_vars = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env_vars["AGENTCRED_LOG_LEVEL"] == "DEBUG"
    assert policy.read_namespaced_pod_disruption_budget(operator_name, ns)
    assert core.read_namespaced_config_map(f"{release}-dashboard", ns).data["agentcred.json"]
    history = json.loads(run([*base, "history", release, "--output", "json"], env))
    assert [h["revision"] for h in history] == [1, 2]

    run([*base, "uninstall", release, "--wait"], env)

    def gone(read: Any, *args: str) -> bool:
        try:
            read(*args)
        except ApiException as exc:
            return exc.status == 404
        return False

    for read, args in (
        (apps.read_namespaced_deployment, (operator_name, ns)),
        (core.read_namespaced_service_account, (release, ns)),
        (core.read_namespaced_config_map, (f"{release}-dashboard", ns)),
        (policy.read_namespaced_pod_disruption_budget, (operator_name, ns)),
        (rbac.read_namespaced_role, (operator_name, ns)),
        (rbac.read_cluster_role, (operator_name,)),
        (rbac.read_cluster_role_binding, (operator_name,)),
    ):
        wait_for(lambda r=read, a=args: gone(r, *a), 30, f"{read.__name__}{args} removed")
