"""The fake API server answers the operator's kube layer as the real one does: what a
harness test proves about the core is only worth as much as this."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from agentcred.backends.base import BackendInvalidConfig
from agentcred.kube import resources, secrets, watch
from agentcred.kube.calls import call
from agentcred.kube.errors import KubeConflict, KubeNotFound, KubeUnavailable
from agentcred.kube.objects import OwnerRef
from agentcred.models.api_names import API_VERSION, FINALIZER, MANAGED_SELECTOR, Label
from support.harness import FakeApiServer, FakeClock, Harness, play
from support.harness.objects import agent_task, namespace, pod
from support.harness.patching import json_patch, merge_patch, selects
from support.harness.transport import fake_api_client

T = TypeVar("T")


def served(scenario: Callable[[FakeApiServer, ApiClient], Awaitable[T]]) -> T:
    async def main() -> T:
        server = FakeApiServer(FakeClock().now)
        server.seed(namespace("a"))
        api = await fake_api_client(server)
        try:
            return await scenario(server, api)
        finally:
            await api.close()

    return asyncio.run(main())


def test_create_twice_is_409_and_a_missing_object_is_404() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> None:
        await secrets.write_secret(api, "a", "s", {"k": "v"}, labels={}, annotations={}, owner=None)
        core = CoreV1Api(api)
        body = {"metadata": {"name": "s"}, "data": {}}
        with pytest.raises(KubeConflict, match="already exists"):
            await call("Secret a/s", core.create_namespaced_secret, "a", body)
        with pytest.raises(KubeNotFound):
            await call("Secret a/x", core.read_namespaced_secret, "x", "a")
        assert await resources.get_task(api, "a", "missing") is None
        assert [str(c) for c in server.calls] == [
            "create secrets a/s -> 201",
            "create secrets a/s -> 409",
            "get secrets a/x -> 404",
            "get agenttasks a/missing -> 404",
        ]

    served(scenario)


def test_resource_versions_grow_and_a_stale_one_is_409() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> None:
        task = server.seed(agent_task("t", ns="a"))
        old = task["metadata"]["resourceVersion"]
        patched = await resources.patch_task_status(api, "a", "t", {"phase": "Pending"})
        assert int(patched["metadata"]["resourceVersion"]) > int(old)
        assert patched["status"] == {"phase": "Pending"}
        with pytest.raises(KubeConflict, match="changed concurrently"):
            await resources.patch_task_status(api, "a", "t", {"phase": "X"}, resource_version=old)
        assert server.read("agenttasks", "a", "t")["status"] == {"phase": "Pending"}  # type: ignore[index]

    served(scenario)


def test_the_status_subresource_and_the_object_are_written_apart() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> None:
        server.seed(agent_task("t", ns="a", status={"phase": "Active"}))
        await resources.patch_task_status(
            api, "a", "t", {"phase": "Failed", "x": 1}
        )  # status only, spec untouched
        custom = CustomObjectsApi(api)
        await call(
            "AgentTask a/t",
            custom.patch_namespaced_custom_object,
            "agentcred.io",
            "v1alpha1",
            "a",
            "agenttasks",
            "t",
            {"spec": {"completed": True}, "status": {"phase": "Ignored"}},
            _content_type="application/merge-patch+json",
        )
        stored = server.read("agenttasks", "a", "t") or {}
        assert stored["status"] == {"phase": "Failed", "x": 1}
        assert stored["spec"]["completed"] is True
        assert stored["metadata"]["generation"] == 2  # the spec changed once

    served(scenario)


def test_delete_holds_for_finalizers_checks_preconditions_and_collects_owned_objects() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> None:
        task = server.seed(agent_task("t", ns="a", finalizers=[FINALIZER]))
        owner = OwnerRef(API_VERSION, "AgentTask", "t", task["metadata"]["uid"])
        await secrets.write_secret(
            api, "a", "s", {"k": "v"}, labels={}, annotations={}, owner=owner
        )
        server.remove("agenttasks", "a", "t")
        held = server.read("agenttasks", "a", "t") or {}
        assert held["metadata"]["deletionTimestamp"]  # the finalizer holds it
        server.edit("agenttasks", "a", "t", {"metadata": {"finalizers": None}})
        assert server.read("agenttasks", "a", "t") is None
        assert server.read("secrets", "a", "s") is None  # garbage collected with its owner
        assert await secrets.delete_secret(api, "a", "s", owner_uid=None) is False

    served(scenario)


def test_lists_page_and_select_by_label() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> None:
        for i in range(5):
            server.seed(pod(f"p{i}", {"app": "x" if i % 2 else "y"}, ns="a"))
        pods = await resources.list_pods(api, "a", "app=x")
        assert [p["metadata"]["name"] for p in pods] == ["p1", "p3"]
        assert pods[0]["kind"] == "Pod"  # filled in from the list, as for real core lists

    served(scenario)


def test_injected_faults_answer_with_their_status_and_retry_after() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> None:
        server.fail("get", "agenttasks", 429, retry_after=3.0)
        with pytest.raises(KubeUnavailable) as caught:
            await resources.get_task(api, "a", "t")
        assert caught.value.retry_after == 3.0
        assert await resources.get_task(api, "a", "t") is None  # once only

    served(scenario)


def test_a_watch_streams_changes_and_lists_again_after_410_gone() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> list[tuple[str, str]]:
        seen: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        stop = asyncio.Event()

        async def on_event(type_: str, obj: dict[str, Any]) -> None:
            await seen.put((type_, obj["metadata"]["name"]))

        async def next_event() -> tuple[str, str]:
            return await asyncio.wait_for(seen.get(), 5)

        def secret(name: str) -> dict[str, Any]:
            labels = {Label.MANAGED_BY: "agentcred"}
            return {
                "kind": "Secret",
                "metadata": {"name": name, "namespace": "a", "labels": labels},
            }

        server.seed(secret("s1"))
        server.seed({"kind": "Secret", "metadata": {"name": "other", "namespace": "a"}})
        watcher = asyncio.create_task(
            watch.watch_secrets(api, MANAGED_SELECTOR, on_event, stop, "a")
        )
        events = [await next_event()]  # the first list
        server.seed(secret("s2"))
        events.append(await next_event())  # streamed
        server.store.end_watches()  # the server ends the watch...
        server.store.compact()  # ...and forgets its history: resuming is 410 Gone
        server.remove("secrets", "a", "s1")  # while nobody watches
        events.append(await next_event())  # the re-list reports what went
        stop.set()
        await watcher
        verbs = [c.verb for c in server.calls]
        assert verbs == ["list", "watch", "watch", "list", "watch"], verbs
        return events

    assert served(scenario) == [("ADDED", "s1"), ("ADDED", "s2"), ("DELETED", "s1")]


def test_patches_and_selectors_follow_their_rfcs() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}
    }
    doc = {"l": [1, 2], "m": {"x": 1}}
    ops = [
        {"op": "add", "path": "/l/-", "value": 3},
        {"op": "remove", "path": "/m/x"},
        {"op": "test", "path": "/l/0", "value": 1},
        {"op": "replace", "path": "/l/1", "value": 9},
    ]
    assert json_patch(doc, ops) == {"l": [1, 9, 3], "m": {}}
    labels = {"a": "1", "b": "2"}
    assert selects("a=1,b in (2,3),!c", labels)
    assert not selects("a!=1", labels)
    assert selects("b notin (3)", labels) and not selects("c", labels)
    assert selects("", labels)


def test_the_fake_clock_stamps_created_objects() -> None:
    clock = FakeClock(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC))
    server = FakeApiServer(clock.now)
    created = server.seed(namespace("z"))
    assert created["metadata"]["creationTimestamp"] == "2030-01-01T00:00:00Z"


def test_a_backend_kind_the_test_gave_no_fake_for_is_refused_not_built() -> None:
    """The harness serves every backend kind the operator knows: a kind without a fake
    answers "not available" instead of building the real client (which would reach for a
    network and credentials a unit test must not touch)."""

    async def scenario(h: Harness) -> None:
        with pytest.raises(BackendInvalidConfig, match="no fake 'gcpSecretManager'"):
            h.deps.backends.for_kind("gcpSecretManager")
        assert h.deps.backends.for_kind("vault") is not None

    play(Harness(), scenario)
