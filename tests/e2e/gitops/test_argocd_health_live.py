"""Argo CD's verdict on objects the operator really produces, in every state the health
checks distinguish; optionally writes them as the checks' test data.

One operator, one namespace, every scenario at once: ready and broken
CredentialBackends (plain http without allowInsecureHTTP, a missing operator-side
Secret) and AgentCredentials (backend unreachable, a path outside the backend's
allow-list), tasks that wait (missing credential, unreachable backend, a foreign Secret
in the way), run, succeed, expire and fail, and, before the operator starts or after it
stopped, objects it has not caught up with (no status yet, a newer generation, a
completion request). Each object is judged by ``argocd/.../health.lua`` in Argo CD's Lua runtime
and must get the status that ``health_test.yaml`` gives its captured twin, so a check
cannot drift away from what the operator writes.

``AGENTCRED_CAPTURE_TESTDATA=1`` additionally writes each object, trimmed of server
noise and with the run's names made stable (``team-a``, ``agentcred-system``, the
backends without their per-run prefix), to ``<Kind>/testdata/<case>.yaml``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from agentcred.models.api_names import Reason
from support import hygiene, vault
from support.credentials import DYNAMIC
from support.kube import GROUP, REPO, VERSION, wait_for
from support.operator import operator_env, running_operator
from support.scenario import TEST_NAMESPACE_LABEL, Scenario
from support.tools import argocd_health

pytestmark = pytest.mark.e2e

CUSTOMIZATIONS = REPO / "argocd" / "resource_customizations" / GROUP
CAPTURE = os.environ.get("AGENTCRED_CAPTURE_TESTDATA") == "1"
# Kopf's bookkeeping (it stores handler progress and the last handled spec under the
# operator's prefix on the custom resources) and kubectl's: not what a health check reads.
NOISE_ANNOTATION_PREFIXES = ("agentcred.io/", "kopf.zalando.org/", "kubectl.kubernetes.io/")


def trim(obj: dict[str, Any], namespaces: dict[str, str]) -> dict[str, Any]:
    """What Argo CD's test data keep: identity, spec, status; no server bookkeeping."""
    meta = obj["metadata"]
    kept: dict[str, Any] = {"name": meta["name"], "namespace": meta.get("namespace")}
    for key in ("generation", "labels", "finalizers"):
        if meta.get(key):
            kept[key] = meta[key]
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(NOISE_ANNOTATION_PREFIXES)
    }
    if annotations:
        kept["annotations"] = annotations
    out = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": kept}
    for key in ("spec", "status"):
        if key in obj:
            out[key] = obj[key]
    text = json.dumps(out)
    for real, shown in namespaces.items():
        text = text.replace(real, shown)
    trimmed: dict[str, Any] = json.loads(text)
    if trimmed["metadata"]["namespace"] is None:
        del trimmed["metadata"]["namespace"]
    return trimmed


def expected_status(kind: str, case: str) -> str:
    spec = yaml.safe_load((CUSTOMIZATIONS / kind / "health_test.yaml").read_text())
    for test in spec["tests"]:
        if test["inputPath"] == f"testdata/{case}.yaml":
            return str(test["healthStatus"]["status"])
    raise AssertionError(f"{kind}/health_test.yaml has no case testdata/{case}.yaml")


class Judge:
    """Collects (case, object) pairs and has Argo CD's Lua runtime judge each one."""

    def __init__(self, binary: Path, tmp: Path, namespaces: dict[str, str]) -> None:
        self.binary, self.tmp, self.namespaces = binary, tmp, namespaces
        self.verdicts: dict[str, dict[str, Any]] = {}

    def __call__(self, case: str, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj["kind"]
        trimmed = trim(obj, self.namespaces)
        body = yaml.safe_dump(trimmed, sort_keys=False)
        path = self.tmp / f"{kind}-{case}.yaml"
        path.write_text(body)
        if CAPTURE:
            target = CUSTOMIZATIONS / kind / "testdata" / f"{case}.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
        verdicts = {
            libs: argocd_health(self.binary, CUSTOMIZATIONS / kind / "health.lua", path, libs)
            for libs in ("builtin", "configmap")
        }
        assert verdicts["builtin"] == verdicts["configmap"], (case, verdicts)
        verdict = verdicts["builtin"]
        self.verdicts[f"{kind}/{case}"] = verdict
        assert verdict["status"] == expected_status(kind, case), (case, verdict, trimmed)
        return verdict


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def test_argocd_health_of_objects_the_operator_produced(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    crds: None,
    namespace: str,
    argocd_lua: Path,
    tmp_path: Path,
) -> None:
    core = client.CoreV1Api(kube)
    quiet, own = f"{namespace}-quiet"[:63], f"{namespace}-system"[:63]
    for extra in (quiet, own):
        core.create_namespace(
            {"metadata": {"name": extra, "labels": {"agentcred.io/test": "true"}}}
        )
    prefix = namespace[-5:]  # backends are cluster-scoped: unique names per run
    judge = Judge(
        argocd_lua,
        tmp_path,
        {quiet: "team-b", own: "agentcred-system", namespace: "team-a", f"{prefix}-": ""},
    )
    scene, idle = Scenario(kube, namespace), Scenario(kube, quiet)
    custom = scene.custom
    backends: list[str] = []

    def backend(name: str, **spec: Any) -> str:
        full = f"{prefix}-{name}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CredentialBackend",
            "metadata": {"name": full},
            "spec": {"namespaceSelector": {"matchLabels": {"agentcred.io/test": "true"}}, **spec},
        }
        custom.create_cluster_custom_object(GROUP, VERSION, "credentialbackends", body)
        backends.append(full)
        return full

    def get_backend(name: str) -> dict[str, Any]:
        result: dict[str, Any] = custom.get_cluster_custom_object(
            GROUP, VERSION, "credentialbackends", name
        )
        return result

    def credential(ns: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, "agentcredentials", name
        )
        return result

    def task(ns: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, "agenttasks", name
        )
        return result

    def ready(get: Callable[[], dict[str, Any]], status: str) -> Callable[[], Any]:
        def check() -> dict[str, Any] | None:
            obj = get()
            cond = ready_condition(obj)
            return obj if cond and cond["status"] == status else None

        return check

    try:
        account = scene.service_account("agent")
        role = vault.kubernetes_role(testbed_env, namespace, account)
        kubernetes_auth = {"kubernetes": {"mount": "kubernetes", "audience": "vault"}}
        vault_spec = {
            "address": testbed_env["VAULT_ADDR"],
            "auth": kubernetes_auth,
            "allowedPaths": ["database/creds/readonly"],
        }
        main = backend("vault", allowInsecureHTTP=True, vault=vault_spec)
        edited_backend = backend("edited", allowInsecureHTTP=True, vault=vault_spec)
        down = backend(
            "down", allowInsecureHTTP=True, vault={**vault_spec, "address": "http://127.0.0.1:9"}
        )
        insecure = backend("insecure", vault=vault_spec)
        noref = backend(
            "noref",
            allowInsecureHTTP=True,
            vault={
                **vault_spec,
                "auth": {"appRole": {"roleId": "r", "secretIdRef": {"name": "absent", "key": "k"}}},
            },
        )
        db = {"role": role, "dynamic": DYNAMIC}
        scene.credential("db", backendRef={"name": main}, vault=db)
        scene.credential("edited", backendRef={"name": main}, vault=db)
        scene.credential("down", backendRef={"name": down}, vault=db)
        scene.credential(
            "elsewhere",
            backendRef={"name": main},
            vault={"role": role, "dynamic": {"path": "database/creds/admin"}},
        )
        scene.credential(
            "templated",
            backendRef={"name": main},
            vault=db,
            template={"URL": "postgresql://{{ user }}@db"},
        )
        scene.secret("conflict-db", {"owner": "someone-else"})
        as_agent = {"serviceAccountName": "agent"}
        scene.task("active", ["db"], **as_agent)
        scene.task("completing", ["db"], **as_agent)
        scene.task("succeeded", ["db"], **as_agent)
        scene.task("expired", ["db"], activeDeadlineSeconds=3, **as_agent)
        scene.task("failed", ["templated"], **as_agent)
        scene.task("waiting-for-credential", ["missing"], **as_agent)
        scene.task("waiting-for-backend", ["down"], **as_agent)
        scene.task("conflict", ["db"], **as_agent)
        # What Argo CD sees right after a sync, before the operator has looked: a
        # backend created while no operator runs, and objects in a namespace none watches.
        fresh = backend("fresh", allowInsecureHTTP=True, vault=vault_spec)
        judge("no-status", get_backend(fresh))
        idle.service_account("agent")
        idle.credential("fresh", backendRef={"name": main}, vault=db)
        idle.task("fresh", ["fresh"], **as_agent)

        env = {**operator_env(testbed_env), "AGENTCRED_NAMESPACE": own}
        with running_operator(env, tmp_path / "operator.log", "--namespace", namespace):
            judge("ready", wait_for(ready(lambda: get_backend(main), "True"), 60, "backend Ready"))
            edited_be = wait_for(ready(lambda: get_backend(edited_backend), "True"), 60, "edited")
            bad = wait_for(ready(lambda: get_backend(insecure), "False"), 60, "insecure backend")
            assert ready_condition(bad)["reason"] == Reason.INSECURE_ADDRESS  # type: ignore[index]
            judge("insecure-address", bad)
            bad = wait_for(ready(lambda: get_backend(noref), "False"), 60, "backend w/o Secret")
            assert ready_condition(bad)["reason"] == Reason.SECRET_NOT_FOUND  # type: ignore[index]
            judge("secret-not-found", bad)

            judge("ready", wait_for(ready(lambda: credential(namespace, "db"), "True"), 60, "db"))
            edited = wait_for(ready(lambda: credential(namespace, "edited"), "True"), 60, "edited")
            bad = wait_for(ready(lambda: credential(namespace, "down"), "False"), 60, "down")
            assert ready_condition(bad)["reason"] == Reason.BACKEND_UNAVAILABLE  # type: ignore[index]
            judge("backend-unavailable", bad)
            bad = wait_for(ready(lambda: credential(namespace, "elsewhere"), "False"), 60, "path")
            assert ready_condition(bad)["reason"] == Reason.NOT_ALLOWED  # type: ignore[index]
            judge("not-allowed", bad)

            scene.wait_phase("active", "Active")
            judge("active", task(namespace, "active"))
            scene.wait_condition("waiting-for-credential", Reason.CREDENTIAL_NOT_FOUND)
            judge("pending-credential-not-found", task(namespace, "waiting-for-credential"))
            scene.wait_condition("waiting-for-backend", Reason.BACKEND_UNAVAILABLE)
            judge("pending-backend-unavailable", task(namespace, "waiting-for-backend"))
            scene.wait_condition("conflict", Reason.SECRET_CONFLICT)
            judge("pending-secret-conflict", task(namespace, "conflict"))
            scene.wait_phase("failed", "Failed")
            judge("failed", task(namespace, "failed"))
            scene.wait_phase("succeeded", "Active")
            scene.patch_task("succeeded", {"completed": True})
            scene.wait_phase("succeeded", "Succeeded")
            judge("succeeded", task(namespace, "succeeded"))
            scene.wait_phase("expired", "Expired", timeout=60)
            judge("expired", task(namespace, "expired"))
            scene.wait_phase("completing", "Active")
        # The operator is gone: changes it has not seen yet.
        scene.patch_task("completing", {"completed": True})
        judge("active-completion-requested", task(namespace, "completing"))
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "agentcredentials", "edited", {"spec": {"ttl": "20m"}}
        )
        behind = credential(namespace, "edited")
        assert behind["metadata"]["generation"] > edited["status"]["observedGeneration"]
        judge("generation-behind", behind)
        custom.patch_cluster_custom_object(
            GROUP, VERSION, "credentialbackends", edited_backend, {"spec": {"maxTTL": "2h"}}
        )
        behind = get_backend(edited_backend)
        assert behind["metadata"]["generation"] > edited_be["status"]["observedGeneration"]
        judge("generation-behind", behind)
        judge("no-status", credential(quiet, "fresh"))
        judge("no-status", task(quiet, "fresh"))
    finally:
        for name in backends:
            custom.delete_cluster_custom_object(GROUP, VERSION, "credentialbackends", name)
        for extra in (quiet, own):
            hygiene.release_tasks(kube, extra)
            core.delete_namespace(extra)
            # What Scenario.backend made for it (the namespace fixture cleans only its own).
            custom.delete_collection_cluster_custom_object(
                GROUP,
                VERSION,
                "credentialbackends",
                label_selector=f"{TEST_NAMESPACE_LABEL}={extra}",
            )

    statuses = {case: v["status"] for case, v in judge.verdicts.items()}
    assert statuses["AgentTask/failed"] == "Degraded"
    assert statuses["AgentTask/active"] == "Healthy"
    assert statuses["CredentialBackend/insecure-address"] == "Degraded"
    assert judge.verdicts["AgentTask/pending-backend-unavailable"]["message"].startswith(
        "BackendUnavailable: "
    )
