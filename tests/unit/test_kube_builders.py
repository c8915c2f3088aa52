"""The Kubernetes layer's pure parts: digests, selectors, re-list diffs, event bodies, backoff."""

from __future__ import annotations

import base64

import pytest
from kubernetes_asyncio.client import ApiClient

from agentcred.kube.events import event_body
from agentcred.kube.objects import ObjectRef, OwnerRef
from agentcred.kube.resources import MERGE_PATCH
from agentcred.kube.secrets import data_digest, is_ours, secret_info
from agentcred.kube.selectors import selector_string
from agentcred.kube.watch import Backoff, Remembered, relist_events
from agentcred.models.api_names import API_VERSION, Label
from agentcred.models.task import LabelSelector, LabelSelectorRequirement


def secret(data: dict[str, str], **meta: object) -> dict[str, object]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "1", **meta},
        "data": encoded,
    }


def test_the_digest_of_written_data_matches_the_stored_secret() -> None:
    data = {"username": "u", "password": "hunter2-value"}
    info = secret_info(secret(data))
    assert info.data_digest == data_digest(data)
    assert info.keys == ["password", "username"]
    assert data_digest({"username": "u", "password": "changed"}) != info.data_digest
    assert "hunter2" not in repr(info)
    # boundaries between keys and values matter
    assert data_digest({"ab": "c"}) != data_digest({"a": "bc"})


def test_ours_means_managed_by_agentcred_and_owned_by_the_owner() -> None:
    owner = OwnerRef(API_VERSION, "AgentTask", "t", "uid-1")
    labelled = {"labels": {Label.MANAGED_BY: "agentcred"}}
    owned = secret({}, **labelled, ownerReferences=[owner.as_dict(controller=True)])
    assert is_ours(secret_info(owned), "uid-1")
    assert is_ours(secret_info(owned), None)
    assert not is_ours(secret_info(owned), "uid-2")
    assert not is_ours(secret_info(secret({}, ownerReferences=[owner.as_dict(True)])), "uid-1")
    assert is_ours(secret_info(secret({}, **labelled)), None)


def test_selector_string_renders_labels_and_expressions() -> None:
    selector = LabelSelector(
        match_labels={"b": "2", "a": "1"},
        match_expressions=(
            LabelSelectorRequirement("env", "In", ("dev", "prod")),
            LabelSelectorRequirement("tier", "NotIn", ("db",)),
            LabelSelectorRequirement(Label.TASK, "Exists"),
            LabelSelectorRequirement("legacy", "DoesNotExist"),
        ),
    )
    assert selector_string(selector) == (
        "a=1,b=2,env in (dev,prod),tier notin (db),agentcred.io/task,!legacy"
    )
    assert selector_string(LabelSelector()) == ""
    with pytest.raises(ValueError, match="Gt"):
        selector_string(LabelSelector(match_expressions=(LabelSelectorRequirement("x", "Gt"),)))


def obj(uid: str, version: str) -> Remembered:
    return Remembered.of({"metadata": {"uid": uid, "name": uid, "resourceVersion": version}})


def test_a_relist_reports_what_changed_while_nobody_watched() -> None:
    known = {"a": obj("a", "1"), "b": obj("b", "1"), "c": obj("c", "1")}
    listed = {"a": obj("a", "1"), "b": obj("b", "5"), "d": obj("d", "6")}
    events = [(t, o["metadata"]["uid"]) for t, o in relist_events(known, listed)]
    assert events == [("DELETED", "c"), ("MODIFIED", "b"), ("ADDED", "d")]
    assert [t for t, _ in relist_events({}, listed)] == ["ADDED"] * 3


def test_a_watch_remembers_a_skeleton_never_data() -> None:
    owner = {"apiVersion": "agentcred.io/v1alpha1", "kind": "AgentTask", "name": "t1", "uid": "u1"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "t1-db",
            "namespace": "team-a",
            "uid": "s1",
            "resourceVersion": "7",
            "labels": {Label.TASK: "t1", Label.CREDENTIAL: "db"},
            "annotations": {"a": "b"},
            "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
        },
        "data": {"password": "c2VjcmV0"},
    }
    seen = Remembered.of(secret)
    assert seen.body() == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "t1-db",
            "namespace": "team-a",
            "uid": "s1",
            "resourceVersion": "7",
            "labels": {Label.TASK: "t1", Label.CREDENTIAL: "db"},
            "ownerReferences": [{**owner, "controller": True}],
        },
    }
    assert seen.labels[1] is seen.owners[0][2]  # the task label is the owner's name
    pod = {"kind": "Pod", "metadata": {"name": "p", "uid": "p1"}, "status": {"phase": "Running"}}
    assert Remembered.of(pod).body()["status"] == {"phase": "Running"}


def test_event_bodies_are_truncated_and_name_the_object() -> None:
    ref = ObjectRef(API_VERSION, "AgentTask", "team-a", "t" * 300, "uid-1")
    body = event_body(ref, type_="Normal", reason="R" * 200, message="m" * 2000)
    assert len(body["message"]) == 1024
    assert len(body["reason"]) == 128
    assert len(body["metadata"]["name"]) <= 253
    assert body["involvedObject"]["uid"] == "uid-1"
    assert body["metadata"]["namespace"] == "team-a"


def test_backoff_grows_with_jitter_up_to_the_cap_and_honours_retry_after() -> None:
    backoff = Backoff(initial=1.0, cap=8.0)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.next_delay(retry_after=60) == 60
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_the_client_library_would_send_a_dict_patch_as_json_patch() -> None:
    """Why resources.py names the merge-patch content type on every custom-object patch."""
    offered = ["application/json-patch+json", "application/merge-patch+json"]
    chosen = ApiClient.select_header_content_type(None, offered, "PATCH", {"status": {}})  # type: ignore[arg-type]
    assert chosen == "application/json-patch+json"
    assert MERGE_PATCH == "application/merge-patch+json"
