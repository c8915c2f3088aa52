"""One tenant cannot take everyone's turn: a flood of one namespace's tasks does not queue
another namespace's task behind it, and a ResourceQuota caps how many tasks a namespace
may hold at all (the API server refuses the next one, before the operator sees it)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from support import hygiene
from support.credentials import vault_kv
from support.kube import GROUP, VERSION, wait_for
from support.leaks import assert_no_leaks
from support.operator import operator_env, running_operator
from support.scenario import TEST_NAMESPACE_LABEL, Scenario
from support.tenant import SHIPPED, as_user, grant_impersonation, grant_tenant

pytestmark = pytest.mark.e2e

FLOOD = 150
QUEUED_AFTER_VICTIM = 50  # flood tasks the victim must be ahead of


@pytest.fixture
def other_namespace(kube: client.ApiClient, namespace: str) -> Iterator[str]:
    """A second tenant's namespace, emptied and deleted afterwards like ``namespace``."""
    core, custom = client.CoreV1Api(kube), client.CustomObjectsApi(kube)
    name = f"{namespace[:50]}-b{uuid.uuid4().hex[:3]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"agentcred.io/test": "true"}}})
    yield name
    hygiene.forget(kube, name, os.environ["AGENTCRED_NAMESPACE"])
    core.delete_namespace(name)
    with contextlib.suppress(client.ApiException):
        custom.delete_collection_cluster_custom_object(
            GROUP, VERSION, "credentialbackends", label_selector=f"{TEST_NAMESPACE_LABEL}={name}"
        )
    core.delete_collection_namespaced_secret(
        os.environ["AGENTCRED_NAMESPACE"], label_selector=f"{TEST_NAMESPACE_LABEL}={name}"
    )


def _phases(scene: Scenario) -> dict[str, str]:
    items = scene.custom.list_namespaced_custom_object(GROUP, VERSION, scene.ns, "agenttasks")
    return {t["metadata"]["name"]: (t.get("status") or {}).get("phase", "") for t in items["items"]}


def test_a_flood_in_one_namespace_does_not_queue_another_namespace_s_task_behind_it(
    kube: client.ApiClient,
    namespace: str,
    other_namespace: str,
    crds: None,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Both namespaces read KV secrets through the same Vault address (one shared target);
    the flood's tasks are all created and queued before the victim's. Order, not latency:
    when the victim's task is Active, most of the flood is still waiting its turn."""
    flood, victim = Scenario(kube, namespace), Scenario(kube, other_namespace)
    for scene, who in ((flood, "flood"), (victim, "victim")):
        value = {"token": f"{who}-{uuid.uuid4().hex}"}
        scene.values.update(value.values())
        vault_kv(scene, testbed_env, "kv", f"fair/{scene.ns}", value)
    env = {
        **operator_env(testbed_env),
        "AGENTCRED_LOG_LEVEL": "INFO",  # 150 tasks of DEBUG lines cost the 2 cores
        # Few handler slots: the flood queues deep, and a first-come queue would put the
        # victim's task after all of it.
        "AGENTCRED_TASK_CONCURRENCY": "8",
    }
    with running_operator(
        env, tmp_path / "op.log", "--namespace", flood.ns, "--namespace", victim.ns
    ) as op:
        names = [f"flood-{i:03d}" for i in range(FLOOD)]

        def create(name: str) -> None:
            flood.task(name, ["kv"], serviceAccountName="agent")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))
        # The flood is queued: every task created, and the operator at work on them.
        wait_for(lambda: any(_phases(flood).values()), 30, "the operator to start the flood")
        victim.task("victim", ["kv"], serviceAccountName="agent")
        victim.wait_phase("victim", "Active", timeout=60)
        phases = _phases(flood)
        waiting = [n for n in names if phases.get(n) != "Active"]
        print(f"victim Active with {len(waiting)}/{FLOOD} flood tasks not yet Active")
        assert len(waiting) >= QUEUED_AFTER_VICTIM, (
            f"the victim's task waited behind the flood: only {len(waiting)} of {FLOOD} "
            "flood tasks were still queued when it became Active"
        )
        assert victim.read_secret("victim-kv") is not None
        # ... and the flood still finishes: nothing of it was dropped or refused.
        wait_for(
            lambda: all(p == "Active" for p in _phases(flood).values()),
            90,
            "every flood task Active",
            interval=1.0,
        )
    assert_no_leaks(flood, [op])
    assert_no_leaks(victim, [op])


def test_a_resource_quota_caps_the_tasks_of_a_namespace(
    kube: client.ApiClient, namespace: str, crds: None, testbed_env: dict[str, str]
) -> None:
    """README, "One tenant cannot take everyone's turn": ``count/agenttasks.agentcred.io``.
    The API server refuses the tenant's third task under a quota of two; no operator is
    needed, and none would ever see the refused task."""
    admin = client.CoreV1Api(kube)
    _apply_shipped(testbed_env)
    grant_tenant(kube, namespace, "alice")
    Scenario(kube, namespace).service_account("agent")
    grant_impersonation(kube, namespace, "alice", ["agent"])
    _quota(admin, namespace, {"count/agenttasks.agentcred.io": "2"})
    tenant = client.CustomObjectsApi(as_user(testbed_env["KUBECONFIG"], "alice"))

    def task(name: str) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentTask",
            "metadata": {"name": name},
            "spec": {"credentials": [{"name": "kv"}], "serviceAccountName": "agent"},
        }
        result: dict[str, Any] = tenant.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "agenttasks", body
        )
        return result

    # RBAC is read from an informer cache: the first create may race the new bindings.
    wait_for(lambda: _created(task, "first"), 30, "the tenant's first task")
    task("second")
    with pytest.raises(client.ApiException) as refused:
        task("third")
    assert refused.value.status == 403
    assert "exceeded quota" in str(refused.value.body)
    assert "count/agenttasks.agentcred.io" in str(refused.value.body)
    names = {
        t["metadata"]["name"]
        for t in client.CustomObjectsApi(kube).list_namespaced_custom_object(
            GROUP, VERSION, namespace, "agenttasks"
        )["items"]
    }
    assert names == {"first", "second"}


def _quota(admin: client.CoreV1Api, namespace: str, hard: dict[str, str]) -> None:
    """Create a ResourceQuota and wait until the resource-quota controller has filled in
    its status: until then the API server refuses every create it covers (status
    unknown). A quota synced before the controller discovered the CRD (it looks every
    30 s) only gets its status at the next full resync (5 min): create it again."""
    body = {"metadata": {"name": "agenttasks"}, "spec": {"hard": hard}}

    def ready() -> bool:
        used = admin.read_namespaced_resource_quota("agenttasks", namespace).status.used or {}
        return set(hard) <= set(used)

    for _ in range(6):
        admin.create_namespaced_resource_quota(namespace, body)
        try:
            wait_for(ready, 15, "the ResourceQuota's status")
            return
        except AssertionError:
            admin.delete_namespaced_resource_quota("agenttasks", namespace)
            wait_for(lambda: _gone(admin, namespace), 15, "the ResourceQuota deleted")
    raise AssertionError("the resource-quota controller never filled in the quota's status")


def _gone(admin: client.CoreV1Api, namespace: str) -> bool:
    try:
        admin.read_namespaced_resource_quota("agenttasks", namespace)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def _created(task: Any, name: str) -> bool:
    try:
        task(name)
    except client.ApiException as exc:
        if exc.status == 403 and "exceeded quota" not in str(exc.body):
            return False  # the tenant's RoleBinding not in effect yet
        raise
    return True


def _apply_shipped(testbed_env: dict[str, str]) -> None:
    """The shipped admission policy and tenant roles, as a platform team applies them."""
    args = [testbed_env["KUBECTL"], "--kubeconfig", testbed_env["KUBECONFIG"], "apply"]
    for path in SHIPPED:
        args += ["-f", str(path)]
    subprocess.run([*args, "--server-side", "--force-conflicts"], check=True, capture_output=True)
