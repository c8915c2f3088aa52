"""No drift under GitOps: what Argo CD applies stays in sync while the operator works.

The examples are applied the way Argo CD's server-side sync applies them (field
manager ``argocd-controller``, its tracking label and annotation on every object), with
an overlay a GitOps repository would have: their own namespace, and a short ttl so that
renewals happen within the test. Then the operator issues, renews and re-issues, and:

* ``kubectl diff --server-side`` of the same manifests is empty (the comparison Argo
  CD's server-side diff makes): the operator writes only status and Kopf bookkeeping,
  never a field the manifests own, and the CRDs default nothing on the server;
* no Secret the operator generated carries Argo CD's tracking label or annotation
  (it would make Argo CD adopt, then prune, a credential Secret);
* a renewal changes nothing on the task outside what argocd-cm's
  ``ignoreResourceUpdates`` lists (plus what Argo CD always ignores), so renewals do
  not refresh the Application.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import MANAGED_SELECTOR
from support import hygiene, vault
from support.kube import GROUP, REPO, VERSION, kubectl, wait_for
from support.operator import operator_env, running_operator

pytestmark = pytest.mark.e2e

APP = "agentcred-examples"
TRACKING_LABEL = "app.kubernetes.io/instance"
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
FIELD_MANAGER = "argocd-controller"
# Changes Argo CD never counts as a resource update (its built-in ignore list).
ALWAYS_IGNORED = ("/metadata/resourceVersion", "/metadata/managedFields", "/metadata/generation")


def argocd_tracked(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as Argo CD applies it: its tracking label and annotation added."""
    meta = doc["metadata"]
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    ns = meta.get("namespace", "")
    meta.setdefault("labels", {})[TRACKING_LABEL] = APP
    meta.setdefault("annotations", {})[TRACKING_ANNOTATION] = (
        f"{APP}:{group}/{doc['kind']}:{ns}/{meta['name']}"
    )
    return doc


def overlay(docs: list[dict[str, Any]], namespace: str, vault_addr: str) -> list[dict[str, Any]]:
    """The examples in their own namespace (and, cluster-scoped, their own backend names),
    pointed at the testbed's OpenBao, with a lease short enough to renew in seconds."""
    backends = [d["metadata"]["name"] for d in docs if d["kind"] == "CredentialBackend"]
    out = []
    for source in docs:
        text = yaml.safe_dump(source).replace("team-a", namespace)
        for name in backends:
            text = text.replace(name, f"{namespace}-{name}")
        doc = yaml.safe_load(text)
        if doc["kind"] == "CredentialBackend" and "vault" in doc["spec"]:
            doc["spec"]["vault"]["address"] = vault_addr
        if doc["kind"] == "AgentCredential":
            doc["spec"]["ttl"] = "60s"
            doc["spec"]["renewalPercent"] = 10
        out.append(argocd_tracked(doc))
    return out


def changed_paths(old: Any, new: Any, prefix: str = "") -> set[str]:
    """JSON pointers of every leaf that differs between two objects."""
    if isinstance(old, dict) and isinstance(new, dict):
        paths: set[str] = set()
        for key in old.keys() | new.keys():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            paths |= changed_paths(old.get(key), new.get(key), f"{prefix}/{escaped}")
        return paths
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        paths = set()
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            paths |= changed_paths(a, b, f"{prefix}/{i}")
        return paths
    return set() if old == new else {prefix}


def ignored_on_update(kind: str) -> tuple[str, ...]:
    data = yaml.safe_load((REPO / "manifests" / "argocd" / "argocd-cm.yaml").read_text())["data"]
    key = f"resource.customizations.ignoreResourceUpdates.{GROUP}_{kind}"
    return tuple(yaml.safe_load(data.get(key, "{}")).get("jsonPointers", [])) + ALWAYS_IGNORED


@pytest.fixture
def example_namespace(kube: client.ApiClient) -> Iterator[str]:
    """The examples' namespace (created by applying them) and the operator's own."""
    name = f"gitops-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": f"{name}-system"}})
    yield name
    custom = client.CustomObjectsApi(kube)
    for backend in custom.list_cluster_custom_object(GROUP, VERSION, "credentialbackends")["items"]:
        if backend["metadata"]["name"].startswith(f"{name}-"):
            custom.delete_cluster_custom_object(
                GROUP, VERSION, "credentialbackends", backend["metadata"]["name"]
            )
    # The examples' tasks are still Active, their finalizer on, and the operator is gone.
    hygiene.forget(kube, name, f"{name}-system")
    for ns in (name, f"{name}-system"):
        try:
            core.delete_namespace(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise


def test_examples_stay_in_sync_while_the_operator_issues_renews_and_reissues(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    crds: None,
    example_namespace: str,
    tmp_path: Path,
) -> None:
    ns = example_namespace
    sources = sorted((REPO / "examples").glob("*.yaml"))
    assert sources, "no examples to apply"
    docs = [d for p in sources for d in yaml.safe_load_all(p.read_text()) if d]
    manifests = tmp_path / "examples.yaml"
    overlaid = overlay(docs, ns, testbed_env["VAULT_ADDR"])
    manifests.write_text(yaml.safe_dump_all(overlaid, sort_keys=False))
    tasks = [d["metadata"]["name"] for d in docs if d["kind"] == "AgentTask"]
    assert tasks, "the examples have no AgentTask"
    # The Vault side a platform team sets up for the example's agent (as `make dev` does).
    # Its own role name, so a `make dev` on the same testbed keeps its binding.
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for doc in overlaid:
        if doc["kind"] == "AgentCredential":
            role = f"{ns}-{doc['spec']['vault']['role']}"
            doc["spec"]["vault"]["role"] = role
            for account in accounts:
                vault.kubernetes_role(testbed_env, ns, account, role=role)
    manifests.write_text(yaml.safe_dump_all(overlaid, sort_keys=False))

    applied = kubectl(
        testbed_env,
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        str(manifests),
    )
    assert applied.returncode == 0, applied.stderr
    custom, core = client.CustomObjectsApi(kube), client.CoreV1Api(kube)

    def task(name: str) -> dict[str, Any]:
        result: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, "agenttasks", name
        )
        return result

    def entry(name: str) -> dict[str, Any] | None:
        status = task(name).get("status") or {}
        creds = status.get("credentials") or []
        return creds[0] if status.get("phase") == "Active" and creds else None

    env = {**operator_env(testbed_env), "AGENTCRED_NAMESPACE": f"{ns}-system"}
    with running_operator(env, tmp_path / "operator.log", "--namespace", ns):
        name = tasks[0]
        first = wait_for(lambda: entry(name), 90, f"{name} Active")

        def renewed(count: int) -> dict[str, Any] | None:
            current = entry(name)
            return task(name) if current and current.get("renewals", 0) >= count else None

        # Between two renewals (not from the first Active status: Kopf still finishes
        # its creation bookkeeping then), which is what a running task does all day.
        before = wait_for(lambda: renewed(1), 60, "a renewal")
        # The next one after that (renewals 6 s apart, jittered, can come two per poll).
        count = before["status"]["credentials"][0]["renewals"]
        after = wait_for(lambda: renewed(count + 1), 60, "a second renewal")
        assert after["status"]["credentials"][0]["leaseId"] == first["leaseId"]
        # A deleted credential Secret is restored with a fresh credential (a re-issue).
        secret_name = first["secretName"]
        core.delete_namespaced_secret(secret_name, ns)
        wait_for(lambda: (e := entry(name)) and e.get("reissues", 0) >= 1, 60, "a re-issue")
        wait_for(lambda: core.read_namespaced_secret(secret_name, ns), 30, "Secret restored")

        diff = kubectl(
            testbed_env,
            "diff",
            "--server-side",
            f"--field-manager={FIELD_MANAGER}",
            "--force-conflicts",
            "-f",
            str(manifests),
        )
        assert diff.returncode == 0, f"drift after the operator acted:\n{diff.stdout}{diff.stderr}"

        generated = core.list_namespaced_secret(ns, label_selector=MANAGED_SELECTOR).items
        assert generated, "the operator generated no Secret"
        for secret in generated:
            assert TRACKING_LABEL not in (secret.metadata.labels or {}), secret.metadata.name
            assert TRACKING_ANNOTATION not in (secret.metadata.annotations or {}), (
                secret.metadata.name
            )

    churn = changed_paths(before, after)
    assert churn, "a renewal changed nothing on the task"
    ignored = ignored_on_update("AgentTask")
    unignored = {p for p in churn if not p.startswith(ignored)}
    assert not unignored, f"renewal changes that would refresh the Application: {unignored}"
