"""Watching Secrets and Pods with a server-side label selector, until told to stop."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kubernetes import client
from kubernetes_asyncio.client import ApiClient, CoreV1Api

from agentcred.kube import watch
from agentcred.kube.objects import Body
from agentcred.kube.watch import OnEvent, Remembered, watch_pods, watch_secrets
from agentcred.models.api_names import MANAGED_SELECTOR, Label
from support.aio import eventually, run_with_api
from support.kube import wait_for

pytestmark = pytest.mark.e2e

Seen = list[tuple[str, str]]


def recorder(seen: Seen, fail_on: str | None = None) -> OnEvent:
    async def on_event(type_: str, obj: Body) -> None:
        name = obj["metadata"]["name"]
        seen.append((type_, name))
        if name == fail_on:
            raise RuntimeError("handler bug")

    return on_event


def test_watch_secrets_delivers_labelled_changes_only_and_stops(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    task = f"watch-{uuid.uuid4().hex[:8]}"
    labels = {Label.MANAGED_BY: "agentcred", Label.TASK: task}
    selector = f"app.kubernetes.io/managed-by=agentcred,agentcred.io/task={task}"

    def secret(name: str, **metadata: object) -> None:
        core.create_namespaced_secret(
            namespace, {"metadata": {"name": name, **metadata}, "stringData": {"k": "v"}}
        )

    secret("listed", labels=labels)

    async def scenario(api: ApiClient) -> Seen:
        seen: Seen = []
        stopped = asyncio.Event()
        watching = asyncio.create_task(watch_secrets(api, selector, recorder(seen), stopped))
        await eventually(lambda: ("ADDED", "listed") in seen, "the listed Secret")
        await asyncio.to_thread(secret, "unlabelled")
        await asyncio.to_thread(secret, "watched", labels=labels)
        await asyncio.to_thread(
            core.patch_namespaced_secret, "watched", namespace, {"stringData": {"k": "v2"}}
        )
        await asyncio.to_thread(core.delete_namespaced_secret, "watched", namespace)
        await eventually(lambda: ("DELETED", "watched") in seen, "the deletion")
        stopped.set()
        await asyncio.wait_for(watching, 10)
        return seen

    assert run_with_api(scenario) == [
        ("ADDED", "listed"),
        ("ADDED", "watched"),
        ("MODIFIED", "watched"),
        ("DELETED", "watched"),
    ]


def test_a_failing_handler_does_not_end_the_watch(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    labels = {Label.MANAGED_BY: "agentcred"}

    def secret(name: str) -> None:
        core.create_namespaced_secret(namespace, {"metadata": {"name": name, "labels": labels}})

    async def scenario(api: ApiClient) -> Seen:
        seen: Seen = []
        stopped = asyncio.Event()
        on_event = recorder(seen, fail_on="first")
        watching = asyncio.create_task(
            watch_secrets(
                api,
                MANAGED_SELECTOR,
                on_event,
                stopped,
                namespace=namespace,
            )
        )
        await asyncio.to_thread(secret, "first")
        await asyncio.to_thread(secret, "second")
        await eventually(lambda: ("ADDED", "second") in seen, "the second Secret")
        stopped.set()
        await asyncio.wait_for(watching, 10)
        return seen

    seen = run_with_api(scenario)
    assert seen.index(("ADDED", "first")) < seen.index(("ADDED", "second"))


def test_watch_pods_selects_by_label_existence(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    wait_for(lambda: core.list_namespaced_service_account(namespace).items, what="the default SA")

    def pod(name: str, labels: dict[str, str]) -> None:
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )

    async def scenario(api: ApiClient) -> Seen:
        seen: Seen = []
        stopped = asyncio.Event()
        watching = asyncio.create_task(
            watch_pods(api, Label.TASK, recorder(seen), stopped, namespace=namespace)
        )
        await asyncio.to_thread(pod, "other", {"app": "x"})
        await asyncio.to_thread(pod, "agent", {Label.TASK: "claim-1"})
        await eventually(lambda: ("ADDED", "agent") in seen, "the selected pod")
        await asyncio.to_thread(core.delete_namespaced_pod, "agent", namespace)
        await eventually(lambda: ("DELETED", "agent") in seen, "its deletion")
        stopped.set()
        await asyncio.wait_for(watching, 10)
        return seen

    seen = run_with_api(scenario)
    assert {name for _, name in seen} == {"agent"}
    assert seen[0] == ("ADDED", "agent")
    assert seen[-1] == ("DELETED", "agent")


def test_a_watch_whose_version_expired_lists_again_and_reports_only_what_it_missed(
    kube: client.ApiClient, namespace: str
) -> None:
    """410 Gone from the real API server: a watcher that last saw resourceVersion 1 (long
    out of the server's watch history) and remembers a Secret deleted since lists again,
    reports the deletion and the Secret it never saw, and watches on from that list."""
    core = client.CoreV1Api(kube)
    labels = {Label.MANAGED_BY: "agentcred"}

    def secret(name: str) -> None:
        core.create_namespaced_secret(namespace, {"metadata": {"name": name, "labels": labels}})

    secret("kept")
    meta = {"name": "gone", "namespace": namespace, "uid": "gone", "resourceVersion": "1"}
    gone = Remembered.of({"apiVersion": "v1", "kind": "Secret", "metadata": meta})

    async def scenario(api: ApiClient) -> Seen:
        seen: Seen = []
        stopped = asyncio.Event()
        watcher = watch._Watcher(  # as after a long disconnection: old version, old memory
            CoreV1Api(api).list_namespaced_secret,
            (namespace,),
            f"Secrets in {namespace}",
            MANAGED_SELECTOR,
            recorder(seen),
            stopped,
            known={"gone": gone},
            version="1",
        )
        watching = asyncio.create_task(watcher.run())
        await eventually(lambda: len(seen) >= 2, "the re-list's events")
        await asyncio.to_thread(secret, "after")
        await eventually(lambda: ("ADDED", "after") in seen, "the next Secret, streamed")
        stopped.set()
        await asyncio.wait_for(watching, 10)
        return seen

    seen = run_with_api(scenario)
    assert sorted(seen[:2]) == [("ADDED", "kept"), ("DELETED", "gone")]
    assert seen[2:] == [("ADDED", "after")]
