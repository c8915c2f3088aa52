"""Events: posted about our objects, visible through the API, never raising."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes_asyncio.client import ApiClient

from agentcred.kube import events
from agentcred.kube.objects import ObjectRef
from agentcred.models.api_names import EventReason, Reason
from support.aio import run_with_api
from support.kube import wait_for

pytestmark = pytest.mark.e2e


def test_post_event_creates_an_event_about_the_object(
    kube: client.ApiClient, namespace: str
) -> None:
    cm = client.CoreV1Api(kube).create_namespaced_config_map(
        namespace, {"metadata": {"name": "subject"}}
    )
    ref = ObjectRef("v1", "ConfigMap", namespace, "subject", cm.metadata.uid)

    async def scenario(api: ApiClient) -> None:
        await events.post_event(
            api, ref, type_="Warning", reason=EventReason.ISSUE_FAILED, message="x" * 5000
        )

    run_with_api(scenario)
    [event] = wait_for(
        lambda: (
            client.CoreV1Api(kube)
            .list_namespaced_event(
                namespace, field_selector=f"involvedObject.uid={cm.metadata.uid}"
            )
            .items
        ),
        what="the event",
    )
    assert (event.reason, event.type, event.count) == (EventReason.ISSUE_FAILED, "Warning", 1)
    assert event.message == "x" * 1024
    assert event.metadata.name.startswith("subject.")
    assert event.source.component == "agentcred"
    assert event.reporting_component == "agentcred"
    assert (event.involved_object.kind, event.involved_object.name) == ("ConfigMap", "subject")


def test_post_event_never_raises(
    testbed_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    ref = ObjectRef("v1", "ConfigMap", "no-such-namespace-xyz", "subject", "uid-1")

    async def scenario(api: ApiClient) -> None:
        await events.post_event(api, ref, type_="Normal", reason="Nothing", message="m")

    run_with_api(scenario)
    assert "Could not post event Nothing" in caplog.text


def test_repeated_events_are_aggregated_per_reason(kube: client.ApiClient, namespace: str) -> None:
    cm = client.CoreV1Api(kube).create_namespaced_config_map(
        namespace, {"metadata": {"name": "renewed"}}
    )
    ref = ObjectRef("v1", "ConfigMap", namespace, "renewed", cm.metadata.uid)

    async def scenario(api: ApiClient) -> None:
        for i in range(5):
            await events.post_event(
                api, ref, type_="Normal", reason=EventReason.RENEWED, message=f"#{i}"
            )
        await events.post_event(
            api, ref, type_="Warning", reason=EventReason.RENEW_FAILED, message="down"
        )

    run_with_api(scenario)
    items = (
        client.CoreV1Api(kube)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.uid={cm.metadata.uid}")
        .items
    )
    by_reason = {e.reason: e for e in items}
    assert len(items) == 2, [e.reason for e in items]
    assert (by_reason[EventReason.RENEWED].count, by_reason[EventReason.RENEWED].message) == (
        5,
        "#4",
    )
    assert by_reason[Reason.RENEW_FAILED].count == 1
