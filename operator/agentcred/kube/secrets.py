"""Reading referenced Secrets, and writing the generated ones without ever taking another's.

A generated Secret carries a name the user chose (``spec.credentials[].secretName``),
so that name may already belong to someone else. Ours are recognised by the
``app.kubernetes.io/managed-by=agentcred`` label *and*, when an owner is given, by an
ownerReference to it: we create, replace or delete only those, and report a
``KubeSecretCollision`` for anything else, leaving it untouched.

Values are decoded here and handed back; they never appear in a log line or an
exception message. ``SecretInfo`` carries a digest instead, so callers can notice an
edit without keeping the values around.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from agentcred.kube.calls import call, get_or_none, list_all
from agentcred.kube.errors import (
    KubeConflict,
    KubeInvalid,
    KubeNotFound,
    KubeSecretCollision,
    subject,
)
from agentcred.kube.objects import Body, OwnerRef
from agentcred.models.api_names import MANAGED_BY_US, MANAGER, Label
from agentcred.models.names import label_value

log = logging.getLogger(__name__)

ATTEMPTS = 4  # create/replace/delete rounds before giving up on a Secret that keeps changing


@dataclass(frozen=True)
class SecretInfo:
    """Everything about a Secret except its values."""

    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    owner_uids: list[str]
    resource_version: str
    data_digest: str
    keys: list[str]


def secret_labels(task: str, credential: str) -> dict[str, str]:
    """The labels of a generated Secret (long names are hash-shortened to valid values)."""
    return {
        Label.MANAGED_BY: MANAGER,
        Label.TASK: label_value(task),
        Label.CREDENTIAL: label_value(credential),
    }


def data_digest(data: Mapping[str, str]) -> str:
    """The digest ``SecretInfo.data_digest`` has when the Secret holds exactly ``data``."""
    return _digest((key, value.encode()) for key, value in data.items())


def secret_info(obj: Mapping[str, Any]) -> SecretInfo:
    """``SecretInfo`` of a Secret as the API returns it (also for watch events)."""
    meta = obj.get("metadata") or {}
    raw = obj.get("data") or {}
    return SecretInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        owner_uids=[ref.get("uid", "") for ref in meta.get("ownerReferences") or []],
        resource_version=meta.get("resourceVersion", ""),
        data_digest=_digest((key, base64.b64decode(value)) for key, value in raw.items()),
        keys=sorted(raw),
    )


def is_ours(info: SecretInfo, owner_uid: str | None) -> bool:
    """Managed by agentcred and, if an owner is named, owned by it."""
    managed = info.labels.get(Label.MANAGED_BY) == MANAGER
    return managed and (owner_uid is None or owner_uid in info.owner_uids)


async def read_secret_value(api: ApiClient, namespace: str, name: str, key: str) -> str:
    """One key of a Secret, decoded; ``KubeNotFound`` names the Secret or the key."""
    what = subject("Secret", namespace, name)
    obj = await get_or_none(what, CoreV1Api(api).read_namespaced_secret, name, namespace)
    if obj is None:
        raise KubeNotFound(f"{what} not found")
    raw = obj.get("data") or {}
    if key not in raw:
        raise KubeNotFound(f"{what} has no key {key!r}")
    return _decode(raw[key], what, key)


async def read_secret_data(api: ApiClient, namespace: str, name: str) -> dict[str, str] | None:
    """All keys of a Secret, decoded; None if there is no such Secret."""
    what = subject("Secret", namespace, name)
    obj = await get_or_none(what, CoreV1Api(api).read_namespaced_secret, name, namespace)
    if obj is None:
        return None
    return {key: _decode(value, what, key) for key, value in (obj.get("data") or {}).items()}


async def read_secret_and_info(
    api: ApiClient, namespace: str, name: str
) -> tuple[dict[str, str], SecretInfo] | None:
    """All keys of a Secret, decoded, with its ``SecretInfo`` (its resourceVersion, for a
    write that follows); None if there is no such Secret."""
    what = subject("Secret", namespace, name)
    obj = await get_or_none(what, CoreV1Api(api).read_namespaced_secret, name, namespace)
    if obj is None:
        return None
    raw = obj.get("data") or {}
    return {key: _decode(value, what, key) for key, value in raw.items()}, secret_info(obj)


async def get_secret_info(api: ApiClient, namespace: str, name: str) -> SecretInfo | None:
    what = subject("Secret", namespace, name)
    obj = await get_or_none(what, CoreV1Api(api).read_namespaced_secret, name, namespace)
    return None if obj is None else secret_info(obj)


async def ensure_secret_free(api: ApiClient, namespace: str, name: str, owner_uid: str) -> None:
    """Raise ``KubeSecretCollision`` if the name is taken by a Secret ``owner_uid`` may not use."""
    info = await get_secret_info(api, namespace, name)
    if info is not None and not is_ours(info, owner_uid):
        raise _collision(namespace, name)


async def write_secret(
    api: ApiClient,
    namespace: str,
    name: str,
    data: Mapping[str, str],
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    owner: OwnerRef | None,
    controller_owner: bool = True,
    known_version: str | None = None,
) -> SecretInfo:
    """Create the Secret, or replace it if it is ours; ``KubeSecretCollision`` if it is not.

    ``labels`` always gain ``app.kubernetes.io/managed-by=agentcred``. A replace
    keeps the Secret's other metadata (ownerReferences, finalizers) and swaps data,
    labels and annotations; it is retried when the Secret changes in between.

    ``known_version``: the resourceVersion at which we last wrote (or read) this Secret.
    It is then patched in one request with that version as a precondition; a Secret
    changed or deleted since (409/404) takes the path above, ownership check included.
    """
    metadata = _metadata(namespace, name, labels, annotations)
    if owner is not None:
        metadata["ownerReferences"] = [owner.as_dict(controller=controller_owner)]
    body = _secret_body(metadata, data)
    if known_version:
        written = await _patch_known(api, body, known_version)
        if written is not None:
            return written
    return await _create_or_take_over(api, body, owner)


async def create_secret(
    api: ApiClient,
    namespace: str,
    name: str,
    data: Mapping[str, str],
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> SecretInfo | None:
    """Create the Secret (no owner), without a look at its name first; None when a Secret
    of that name exists (409): it is left as it is, never overwritten."""
    what = subject("Secret", namespace, name)
    body = _secret_body(_metadata(namespace, name, labels, annotations), data)
    try:
        return secret_info(
            await call(what, CoreV1Api(api).create_namespaced_secret, namespace, body)
        )
    except KubeConflict:
        return None


def _metadata(
    namespace: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> Body:
    """A generated Secret's metadata: ``labels`` always gain the managed-by label."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**labels, **MANAGED_BY_US},
        "annotations": dict(annotations),
    }


async def _patch_known(api: ApiClient, body: Body, version: str) -> SecretInfo | None:
    """Swap data, labels and annotations of the Secret we know at ``version`` (one JSON
    patch; as ``_replacement``, the rest of its metadata is kept); None when it changed
    or went since: a resourceVersion is never reused, so a match proves it is the Secret
    we wrote or checked, untouched."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    what = subject("Secret", namespace, name)
    operations = [
        {"op": "add", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/metadata/labels", "value": meta["labels"]},
        {"op": "add", "path": "/metadata/annotations", "value": meta["annotations"]},
        {"op": "add", "path": "/data", "value": body["data"]},
    ]
    try:
        written = await call(
            what,
            CoreV1Api(api).patch_namespaced_secret,
            name,
            namespace,
            operations,
            _content_type="application/json-patch+json",
        )
    except (KubeConflict, KubeNotFound, KubeInvalid):
        return None
    return secret_info(written)


async def _create_or_take_over(api: ApiClient, body: Body, owner: OwnerRef | None) -> SecretInfo:
    """Create the Secret ``body``, or replace the one of its name if it is ``owner``'s."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    what = subject("Secret", namespace, name)
    core = CoreV1Api(api)
    owner_uid = owner.uid if owner else None
    for _ in range(ATTEMPTS):
        try:
            return secret_info(await call(what, core.create_namespaced_secret, namespace, body))
        except KubeConflict:
            pass  # it exists: take it over below if it is ours
        current = await get_or_none(what, core.read_namespaced_secret, name, namespace)
        if current is None:
            continue  # deleted in between: create again
        if not is_ours(secret_info(current), owner_uid):
            raise _collision(namespace, name)
        replacement = _replacement(current, body)
        try:
            return secret_info(
                await call(what, core.replace_namespaced_secret, name, namespace, replacement)
            )
        except KubeConflict:
            continue  # changed since we read it: read again
    raise KubeConflict(f"{what} kept changing while being written; gave up after {ATTEMPTS} tries")


async def delete_secret(
    api: ApiClient,
    namespace: str,
    name: str,
    *,
    owner_uid: str | None,
    known_version: str | None = None,
) -> bool:
    """Delete the Secret if it is ours; False if it is missing or someone else's.

    The delete carries the uid and resourceVersion we checked as preconditions, so
    a Secret replaced by someone else in between is never deleted by mistake.
    ``known_version``: the resourceVersion at which we wrote (or read and checked) it;
    the delete is then sent at once with it as the precondition (one request), and only
    a Secret changed since (409) is read and checked first.
    """
    what = subject("Secret", namespace, name)
    core = CoreV1Api(api)

    async def delete(preconditions: dict[str, str]) -> None:
        body = {"preconditions": preconditions}
        await call(what, core.delete_namespaced_secret, name, namespace, body=body)

    if known_version:
        try:
            await delete({"resourceVersion": known_version})
        except KubeNotFound:
            return False
        except KubeConflict:
            pass  # changed since: check it below
        else:
            return True
    for _ in range(ATTEMPTS):
        current = await get_or_none(what, core.read_namespaced_secret, name, namespace)
        if current is None:
            return False
        if not is_ours(secret_info(current), owner_uid):
            log.info("Not deleting %s: it is not managed by agentcred for this owner", what)
            return False
        meta = current["metadata"]
        try:
            await delete({"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]})
        except KubeNotFound:
            return False
        except KubeConflict:
            continue  # changed since we read it: check again
        return True
    raise KubeConflict(f"{what} kept changing while being deleted; gave up after {ATTEMPTS} tries")


async def annotate_secret(
    api: ApiClient,
    namespace: str,
    name: str,
    annotations: Mapping[str, str],
    *,
    owner_uid: str,
    known_version: str | None = None,
) -> SecretInfo | None:
    """Merge ``annotations`` into our Secret (e.g. a renewed expiry); None if it is gone
    or not ours. Only metadata changes: the values are never sent.

    ``known_version``: the resourceVersion at which we wrote it; the patch is then sent
    at once with it as a precondition (one request), and only a Secret changed since is
    read and checked first."""
    what = subject("Secret", namespace, name)
    core = CoreV1Api(api)
    if known_version:
        written = await _annotate_at(api, namespace, name, annotations, known_version)
        if written is not None:
            return written
    current = await get_or_none(what, core.read_namespaced_secret, name, namespace)
    if current is None or not is_ours(secret_info(current), owner_uid):
        return None
    return await _annotate_at(
        api, namespace, name, annotations, current["metadata"]["resourceVersion"]
    )


async def _annotate_at(
    api: ApiClient, namespace: str, name: str, annotations: Mapping[str, str], version: str
) -> SecretInfo | None:
    """Merge ``annotations`` into the Secret if it is still at ``version``; else None."""
    what = subject("Secret", namespace, name)
    core = CoreV1Api(api)
    patch = {"metadata": {"annotations": dict(annotations), "resourceVersion": version}}
    try:
        body = await call(
            what,
            core.patch_namespaced_secret,
            name,
            namespace,
            patch,
            _content_type="application/merge-patch+json",
        )
    except (KubeNotFound, KubeConflict):
        return None
    return secret_info(body)


async def list_secrets(
    api: ApiClient, label_selector: str, namespace: str | None = None
) -> list[SecretInfo]:
    """Secrets matching a label selector, in one namespace or all of them."""
    core = CoreV1Api(api)
    what = subject("Secrets", namespace)
    if namespace is None:
        items, _ = await list_all(
            what, core.list_secret_for_all_namespaces, label_selector=label_selector
        )
    else:
        items, _ = await list_all(
            what, core.list_namespaced_secret, namespace, label_selector=label_selector
        )
    return [secret_info(item) for item in items]


def _secret_body(metadata: Body, data: Mapping[str, str]) -> Body:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": encoded,
    }


def _replacement(current: Body, body: Body) -> Body:
    """``current`` with the data, labels and annotations of ``body`` (resourceVersion kept)."""
    metadata = dict(current["metadata"])
    metadata.pop("managedFields", None)  # omitted: the server keeps its own bookkeeping
    metadata["labels"] = body["metadata"]["labels"]
    metadata["annotations"] = body["metadata"]["annotations"]
    replacement = {key: value for key, value in current.items() if key != "stringData"}
    replacement.update(metadata=metadata, data=body["data"])
    return replacement


def _decode(encoded: str, what: str, key: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        # "from None": the decode error holds the raw bytes, which are the value
        raise KubeInvalid(f"{what}: key {key!r} is not UTF-8 text") from None


def _digest(pairs: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over the key/value pairs in key order, each part length-prefixed."""
    digest = hashlib.sha256()
    for key, value in sorted(pairs):
        for part in (key.encode(), value):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def _collision(namespace: str, name: str) -> KubeSecretCollision:
    return KubeSecretCollision(
        f"{subject('Secret', namespace, name)} already exists and is not managed by agentcred "
        "for this owner; it is left untouched"
    )
