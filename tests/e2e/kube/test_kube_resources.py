"""Our custom resources: status is merge-patched through the status subresource only."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes_asyncio.client import ApiClient

from agentcred.kube import resources
from agentcred.kube.errors import KubeConflict
from agentcred.models.api_names import API_VERSION
from support.aio import run_with_api
from support.kube import create, get

pytestmark = pytest.mark.e2e

SPEC = {"serviceAccountName": "agent", "credentials": [{"name": "research-db"}]}


def make_task(kube: client.ApiClient, namespace: str, name: str = "claim-1") -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION,
        "kind": "AgentTask",
        "metadata": {"name": name},
        "spec": SPEC,
    }
    return create(kube, namespace, body)


def test_patch_task_status_merges_status_without_touching_spec(
    kube: client.ApiClient, crds: None, namespace: str
) -> None:
    created = make_task(kube, namespace)
    first = {
        "phase": "Active",
        "reason": "Issued",
        "startTime": "2026-01-01T00:00:00Z",
        "conditions": [{"type": "Ready", "status": "True"}],
    }

    async def scenario(api: ApiClient) -> tuple[dict[str, Any], dict[str, Any]]:
        await resources.patch_task_status(api, namespace, "claim-1", first)
        # None deletes a key; keys not named are kept
        patched = await resources.patch_task_status(
            api, namespace, "claim-1", {"phase": "Succeeded", "reason": None}
        )
        fetched = await resources.get_task(api, namespace, "claim-1")
        assert fetched is not None
        return patched, fetched

    patched, fetched = run_with_api(scenario)
    assert patched["status"] == {
        "phase": "Succeeded",
        "startTime": "2026-01-01T00:00:00Z",
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert fetched["status"] == patched["status"]
    assert fetched["spec"] == SPEC
    assert fetched["metadata"]["generation"] == created["metadata"]["generation"]


def test_a_status_patch_against_a_stale_resource_version_conflicts(
    kube: client.ApiClient, crds: None, namespace: str
) -> None:
    created = make_task(kube, namespace)
    stale = created["metadata"]["resourceVersion"]

    async def scenario(api: ApiClient) -> None:
        await resources.patch_task_status(
            api, namespace, "claim-1", {"phase": "Active"}, resource_version=stale
        )
        with pytest.raises(KubeConflict):
            await resources.patch_task_status(
                api, namespace, "claim-1", {"phase": "Failed"}, resource_version=stale
            )

    run_with_api(scenario)
    assert get(kube, namespace, "AgentTask", "claim-1")["status"]["phase"] == "Active"


def test_patch_task_metadata_adds_and_removes_a_finalizer(
    kube: client.ApiClient, crds: None, namespace: str
) -> None:
    make_task(kube, namespace)

    async def scenario(api: ApiClient) -> tuple[Any, Any]:
        added = await resources.patch_task_metadata(
            api, namespace, "claim-1", {"finalizers": ["agentcred.io/revoke"]}
        )
        removed = await resources.patch_task_metadata(
            api, namespace, "claim-1", {"finalizers": None}
        )
        return added["metadata"].get("finalizers"), removed["metadata"].get("finalizers")

    assert run_with_api(scenario) == (["agentcred.io/revoke"], None)


def test_missing_resources_read_as_none_and_lists_find_tasks(
    kube: client.ApiClient, crds: None, namespace: str
) -> None:
    make_task(kube, namespace, "claim-a")
    make_task(kube, namespace, "claim-b")

    async def scenario(api: ApiClient) -> tuple[Any, ...]:
        return (
            await resources.get_task(api, namespace, "absent"),
            await resources.get_credential(api, namespace, "absent"),
            await resources.get_pod(api, namespace, "absent"),
            [t["metadata"]["name"] for t in await resources.list_tasks(api, namespace)],
            [
                f"{t['metadata']['namespace']}/{t['metadata']['name']}"
                for t in await resources.list_tasks(api)
            ],
            await resources.list_pods(api, namespace, None),
        )

    task, credential, pod, here, everywhere, pods = run_with_api(scenario)
    assert (task, credential, pod, pods) == (None, None, None, [])
    assert sorted(here) == ["claim-a", "claim-b"]
    assert {f"{namespace}/claim-a", f"{namespace}/claim-b"} <= set(everywhere)
