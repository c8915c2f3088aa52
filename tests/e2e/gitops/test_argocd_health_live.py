"""Argo CD's verdict on objects the operator really produces, in every state the health
checks distinguish; optionally writes them as the checks' test data.

One operator, one namespace, every scenario at once: a ready and two broken
AgentCredentials, tasks that wait (missing credential, unreachable backend, a foreign
Secret in the way), run, succeed, expire and fail, and, after the operator is stopped,
objects it has not caught up with (no status yet, a newer generation, a completion
request). Each object is judged by ``argocd/.../health.lua`` in Argo CD's Lua runtime
and must get the status that ``health_test.yaml`` gives its captured twin, so a check
cannot drift away from what the operator writes.

``AGENTCRED_CAPTURE_TESTDATA=1`` additionally writes each object, trimmed of server
noise and with the namespace renamed ``team-a``, to ``testdata/<case>.yaml``.
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

from support import vault
from support.kube import GROUP, REPO, VERSION, wait_for
from support.operator import operator_env, running_operator
from support.scenario import Scenario
from support.tools import argocd_health

pytestmark = pytest.mark.e2e

CUSTOMIZATIONS = REPO / "argocd" / "resource_customizations" / GROUP
CAPTURE = os.environ.get("AGENTCRED_CAPTURE_TESTDATA") == "1"
DYNAMIC = {"path": "database/creds/readonly"}
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
    quiet = f"{namespace}-quiet"[:63]
    core.create_namespace({"metadata": {"name": quiet, "labels": {"agentcred.io/test": "true"}}})
    judge = Judge(argocd_lua, tmp_path, {quiet: "team-b", namespace: "team-a"})
    scene, idle = Scenario(kube, namespace), Scenario(kube, quiet)
    custom = scene.custom

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

    try:
        account = scene.service_account("agent")
        auth = {"kubernetes": {"role": vault.kubernetes_role(testbed_env, namespace, account)}}
        unreachable = {"address": "http://127.0.0.1:9", "auth": auth, "dynamic": DYNAMIC}
        scene.credential("db", vault={"auth": auth, "dynamic": DYNAMIC})
        scene.credential("edited", vault={"auth": auth, "dynamic": DYNAMIC})
        scene.credential("down", vault=unreachable)
        scene.credential(
            "noref",
            vault={
                "auth": {"appRole": {"roleId": "r", "secretIdRef": {"name": "absent", "key": "k"}}},
                "dynamic": DYNAMIC,
            },
        )
        scene.credential(
            "templated",
            vault={"auth": auth, "dynamic": DYNAMIC},
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
        # Objects nobody watches: what Argo CD sees right after a sync, before the
        # operator has looked at them.
        idle.service_account("agent")
        idle.credential("fresh", vault={"auth": auth, "dynamic": DYNAMIC})
        idle.task("fresh", ["fresh"], **as_agent)

        with running_operator(
            operator_env(testbed_env), tmp_path / "operator.log", "--namespace", namespace
        ):

            def cred_ready(name: str, status: str) -> Callable[[], dict[str, Any] | None]:
                def check() -> dict[str, Any] | None:
                    obj = credential(namespace, name)
                    cond = ready_condition(obj)
                    return obj if cond and cond["status"] == status else None

                return check

            judge("ready", wait_for(cred_ready("db", "True"), 60, "db Ready"))
            edited = wait_for(cred_ready("edited", "True"), 60, "edited Ready")
            down = wait_for(cred_ready("down", "False"), 60, "down not Ready")
            assert ready_condition(down)["reason"] == "BackendUnavailable"  # type: ignore[index]
            judge("backend-unavailable", down)
            noref = wait_for(cred_ready("noref", "False"), 60, "noref not Ready")
            assert ready_condition(noref)["reason"] == "SecretNotFound"  # type: ignore[index]
            judge("secret-not-found", noref)

            scene.wait_phase("active", "Active")
            judge("active", task(namespace, "active"))
            scene.wait_condition("waiting-for-credential", "CredentialNotFound")
            judge("pending-credential-not-found", task(namespace, "waiting-for-credential"))
            scene.wait_condition("waiting-for-backend", "BackendUnavailable")
            judge("pending-backend-unavailable", task(namespace, "waiting-for-backend"))
            scene.wait_condition("conflict", "SecretConflict")
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
        judge("no-status", credential(quiet, "fresh"))
        judge("no-status", task(quiet, "fresh"))
    finally:
        core.delete_namespace(quiet)

    statuses = {case: v["status"] for case, v in judge.verdicts.items()}
    assert statuses["AgentTask/failed"] == "Degraded"
    assert statuses["AgentTask/active"] == "Healthy"
    assert judge.verdicts["AgentTask/pending-backend-unavailable"]["message"].startswith(
        "BackendUnavailable: "
    )
