"""Generated Secrets: created and replaced when ours, never overwritten or deleted when not."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client
from kubernetes_asyncio.client import ApiClient

from agentcred.kube import secrets
from agentcred.kube.errors import KubeNotFound, KubeSecretCollision
from agentcred.kube.objects import OwnerRef
from agentcred.models.api_names import Annotation, Label
from support.aio import run_with_api

pytestmark = pytest.mark.e2e


def make_owner(kube: client.ApiClient, namespace: str, name: str = "owner") -> OwnerRef:
    """A real object to own Secrets (a dangling owner would make the GC delete them)."""
    cm = client.CoreV1Api(kube).create_namespaced_config_map(
        namespace, {"metadata": {"name": name}}
    )
    return OwnerRef(api_version="v1", kind="ConfigMap", name=name, uid=cm.metadata.uid)


def foreign_secret(kube: client.ApiClient, namespace: str, name: str, **metadata: object) -> None:
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        {"metadata": {"name": name, **metadata}, "stringData": {"password": "theirs"}},
    )


def stored(kube: client.ApiClient, namespace: str, name: str) -> client.V1Secret:
    return client.CoreV1Api(kube).read_namespaced_secret(name, namespace)


def decoded(secret: client.V1Secret) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def test_write_secret_creates_then_replaces_ours(kube: client.ApiClient, namespace: str) -> None:
    owner = make_owner(kube, namespace)
    labels = secrets.secret_labels("claim-1", "db")

    async def scenario(api: ApiClient) -> tuple[secrets.SecretInfo, secrets.SecretInfo]:
        first = await secrets.write_secret(
            api,
            namespace,
            "claim-1-db",
            {"username": "u1", "password": "p1"},
            labels=labels,
            annotations={Annotation.EXPIRES_AT: "t1"},
            owner=owner,
        )
        second = await secrets.write_secret(
            api,
            namespace,
            "claim-1-db",
            {"username": "u2", "password": "p2", "extra": "x"},
            labels=labels,
            annotations={Annotation.EXPIRES_AT: "t2"},
            owner=owner,
        )
        return first, second

    first, second = run_with_api(scenario)
    assert first.keys == ["password", "username"]
    assert first.data_digest == secrets.data_digest({"username": "u1", "password": "p1"})
    assert second.data_digest == secrets.data_digest(
        {"username": "u2", "password": "p2", "extra": "x"}
    )
    assert second.resource_version != first.resource_version
    assert second.owner_uids == [owner.uid]
    secret = stored(kube, namespace, "claim-1-db")
    assert secret.type == "Opaque"
    assert decoded(secret) == {"username": "u2", "password": "p2", "extra": "x"}
    assert secret.metadata.labels == {
        Label.MANAGED_BY: "agentcred",
        Label.TASK: "claim-1",
        Label.CREDENTIAL: "db",
    }
    assert secret.metadata.annotations == {Annotation.EXPIRES_AT: "t2"}
    [ref] = secret.metadata.owner_references
    assert (ref.uid, ref.kind, ref.controller) == (owner.uid, "ConfigMap", True)


def test_write_secret_refuses_a_secret_it_does_not_own(
    kube: client.ApiClient, namespace: str
) -> None:
    owner = make_owner(kube, namespace)
    other = make_owner(kube, namespace, "other-owner")
    foreign_secret(kube, namespace, "unlabelled")
    foreign_secret(
        kube,
        namespace,
        "other-task",
        labels={Label.MANAGED_BY: "agentcred"},
        ownerReferences=[other.as_dict(controller=True)],
    )
    before = {n: stored(kube, namespace, n) for n in ("unlabelled", "other-task")}

    async def scenario(api: ApiClient) -> list[str]:
        messages = []
        for name in ("unlabelled", "other-task"):
            with pytest.raises(KubeSecretCollision) as caught:
                await secrets.write_secret(
                    api,
                    namespace,
                    name,
                    {"password": "ours"},
                    labels={},
                    annotations={},
                    owner=owner,
                )
            messages.append(str(caught.value))
            with pytest.raises(KubeSecretCollision):
                await secrets.ensure_secret_free(api, namespace, name, owner.uid)
        await secrets.ensure_secret_free(api, namespace, "free-name", owner.uid)
        return messages

    messages = run_with_api(scenario)
    assert messages[0].startswith(f"Secret {namespace}/unlabelled ")
    assert not any("ours" in m or "theirs" in m for m in messages)
    for name, secret in before.items():
        after = stored(kube, namespace, name)
        assert after.metadata.resource_version == secret.metadata.resource_version
        assert decoded(after) == {"password": "theirs"}


def test_delete_secret_leaves_foreign_secrets_alone(kube: client.ApiClient, namespace: str) -> None:
    owner = make_owner(kube, namespace)
    foreign_secret(kube, namespace, "foreign", labels={Label.MANAGED_BY: "someone"})

    async def scenario(api: ApiClient) -> tuple[bool, bool, bool, bool]:
        await secrets.write_secret(
            api, namespace, "ours", {"k": "v"}, labels={}, annotations={}, owner=owner
        )
        foreign = await secrets.delete_secret(api, namespace, "foreign", owner_uid=None)
        wrong_owner = await secrets.delete_secret(api, namespace, "ours", owner_uid="not-the-owner")
        ours = await secrets.delete_secret(api, namespace, "ours", owner_uid=owner.uid)
        missing = await secrets.delete_secret(api, namespace, "ours", owner_uid=owner.uid)
        return foreign, wrong_owner, ours, missing

    assert run_with_api(scenario) == (False, False, True, False)
    assert decoded(stored(kube, namespace, "foreign")) == {"password": "theirs"}
    names = [
        s.metadata.name for s in client.CoreV1Api(kube).list_namespaced_secret(namespace).items
    ]
    assert "ours" not in names


def test_reading_a_missing_secret_or_key_names_it_but_not_the_value(
    kube: client.ApiClient, namespace: str
) -> None:
    foreign_secret(kube, namespace, "token")

    async def scenario(api: ApiClient) -> tuple[str, dict[str, str] | None, list[str]]:
        value = await secrets.read_secret_value(api, namespace, "token", "password")
        missing_data = await secrets.read_secret_data(api, namespace, "absent")
        messages = []
        for name, key in (("absent", "password"), ("token", "nokey")):
            with pytest.raises(KubeNotFound) as caught:
                await secrets.read_secret_value(api, namespace, name, key)
            messages.append(str(caught.value))
        return value, missing_data, messages

    value, missing_data, messages = run_with_api(scenario)
    assert value == "theirs"
    assert missing_data is None
    assert messages == [
        f"Secret {namespace}/absent not found",
        f"Secret {namespace}/token has no key 'nokey'",
    ]


def test_list_secrets_selects_by_label_server_side(kube: client.ApiClient, namespace: str) -> None:
    owner = make_owner(kube, namespace)
    foreign_secret(kube, namespace, "unlabelled")

    async def scenario(api: ApiClient) -> tuple[list[str], list[str]]:
        for cred in ("a", "b"):
            await secrets.write_secret(
                api,
                namespace,
                f"t-{cred}",
                {"k": cred},
                labels=secrets.secret_labels("t", cred),
                annotations={},
                owner=owner,
            )
        here = await secrets.list_secrets(api, "agentcred.io/task=t", namespace)
        everywhere = await secrets.list_secrets(
            api, "agentcred.io/task=t,agentcred.io/credential=b"
        )
        return [s.name for s in here], [f"{s.namespace}/{s.name}" for s in everywhere]

    here, everywhere = run_with_api(scenario)
    assert sorted(here) == ["t-a", "t-b"]
    assert f"{namespace}/t-b" in everywhere
    assert all(name.endswith("/t-b") for name in everywhere)
