"""Reading and patching our custom resources, and reading the pods a task selects.

Status is written with a JSON merge patch on the ``status`` subresource. The client
library has to be told so: for custom objects it offers json-patch and merge-patch,
and for a dict body it picks the first, ``application/json-patch+json``, which the
server rejects (a JSON patch is a list of operations). Every patch here therefore
names ``application/merge-patch+json`` explicitly.

A merge patch replaces lists as a whole (``conditions``, ``finalizers``), so a
caller that computed a list from what it read can pass ``resource_version``: the
patch then fails with ``KubeConflict`` instead of overwriting a newer list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes_asyncio.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi

from agentcred.kube.calls import call, get_or_none, list_all, list_kept
from agentcred.kube.errors import subject
from agentcred.kube.objects import Body
from agentcred.models.api_names import GROUP, KIND_OF, VERSION, Kind, Plural

MERGE_PATCH = "application/merge-patch+json"
T = TypeVar("T")


async def get_backend(api: ApiClient, name: str) -> Body | None:
    """A cluster-scoped CredentialBackend (None if it does not exist)."""
    custom = CustomObjectsApi(api)
    return await get_or_none(
        subject(Kind.BACKEND, None, name),
        custom.get_cluster_custom_object,
        GROUP,
        VERSION,
        Plural.BACKENDS,
        name,
    )


async def patch_backend_status(api: ApiClient, name: str, patch: Mapping[str, Any]) -> Body:
    """Merge ``patch`` into the CredentialBackend's ``.status``."""
    custom = CustomObjectsApi(api)
    return await call(
        subject(Kind.BACKEND, None, name),
        custom.patch_cluster_custom_object_status,
        GROUP,
        VERSION,
        Plural.BACKENDS,
        name,
        {"status": dict(patch)},
        _content_type=MERGE_PATCH,
    )


async def list_quarantines(api: ApiClient) -> list[Body]:
    """Every CredentialQuarantine (cluster-scoped)."""
    custom = CustomObjectsApi(api)
    items, _ = await list_all(
        "CredentialQuarantines",
        custom.list_cluster_custom_object,
        GROUP,
        VERSION,
        Plural.QUARANTINES,
    )
    return items


async def patch_quarantine_status(api: ApiClient, name: str, patch: Mapping[str, Any]) -> Body:
    """Merge ``patch`` into the CredentialQuarantine's ``.status``."""
    custom = CustomObjectsApi(api)
    return await call(
        subject(Kind.QUARANTINE, None, name),
        custom.patch_cluster_custom_object_status,
        GROUP,
        VERSION,
        Plural.QUARANTINES,
        name,
        {"status": dict(patch)},
        _content_type=MERGE_PATCH,
    )


async def all_namespace_labels(api: ApiClient) -> dict[str, dict[str, str]]:
    """Every namespace's labels, by name (one paged list)."""
    core = CoreV1Api(api)

    def keep(item: Body) -> tuple[str, dict[str, str]]:
        meta = item.get("metadata") or {}
        return str(meta.get("name") or ""), dict(meta.get("labels") or {})

    pairs, _ = await list_kept("Namespaces", core.list_namespace, keep=keep)
    return dict(pairs)


async def list_credential_parts(
    api: ApiClient, keep: Callable[[Body], T], namespace: str | None = None
) -> list[T]:
    """``keep(credential)`` of every AgentCredential (of ``namespace`` or all), page by page."""
    return await _list_parts(api, "AgentCredentials", Plural.CREDENTIALS, keep, namespace)


async def namespace_labels(api: ApiClient, namespace: str) -> dict[str, str] | None:
    """The labels of a namespace (None if it does not exist), for namespaceSelectors."""
    body = await get_or_none(
        subject("Namespace", None, namespace), CoreV1Api(api).read_namespace, namespace
    )
    if body is None:
        return None
    return dict((body.get("metadata") or {}).get("labels") or {})


async def get_credential(api: ApiClient, namespace: str, name: str) -> Body | None:
    return await _get(api, Plural.CREDENTIALS, namespace, name)


async def get_task(api: ApiClient, namespace: str, name: str) -> Body | None:
    return await _get(api, Plural.TASKS, namespace, name)


async def list_tasks(api: ApiClient, namespace: str | None = None) -> list[Body]:
    """Every AgentTask, in one namespace or all of them."""
    return await _list(api, "AgentTasks", Plural.TASKS, namespace)


async def list_task_parts(
    api: ApiClient, keep: Callable[[Body], T], namespace: str | None = None
) -> list[T]:
    """``keep(task)`` of every AgentTask (of ``namespace`` or all), page by page: the
    bodies of thousands of tasks are never held at once."""
    return await _list_parts(api, "AgentTasks", Plural.TASKS, keep, namespace)


async def _list_parts(
    api: ApiClient, kind: str, plural: str, keep: Callable[[Body], T], namespace: str | None
) -> list[T]:
    custom = CustomObjectsApi(api)
    what = subject(kind, namespace)
    if namespace is None:
        parts, _ = await list_kept(
            what, custom.list_cluster_custom_object, GROUP, VERSION, plural, keep=keep
        )
    else:
        parts, _ = await list_kept(
            what,
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            keep=keep,
        )
    return parts


async def list_credentials(api: ApiClient, namespace: str | None = None) -> list[Body]:
    """Every AgentCredential, in one namespace or all of them."""
    return await _list(api, "AgentCredentials", Plural.CREDENTIALS, namespace)


async def _list(api: ApiClient, kind: str, plural: Plural, namespace: str | None) -> list[Body]:
    custom = CustomObjectsApi(api)
    what = subject(kind, namespace)
    if namespace is None:
        items, _ = await list_all(what, custom.list_cluster_custom_object, GROUP, VERSION, plural)
    else:
        items, _ = await list_all(
            what, custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural
        )
    return items


async def patch_task_status(
    api: ApiClient,
    namespace: str,
    name: str,
    patch: Mapping[str, Any],
    *,
    resource_version: str | None = None,
) -> Body:
    """Merge ``patch`` into the AgentTask's ``.status`` (``patch`` is the status, not the object).

    ``None`` values delete keys. Returns the whole object as stored.
    """
    return await _patch_status(api, Plural.TASKS, namespace, name, patch, resource_version)


async def patch_credential_status(
    api: ApiClient, namespace: str, name: str, patch: Mapping[str, Any]
) -> Body:
    """Merge ``patch`` into the AgentCredential's ``.status``, as ``patch_task_status``."""
    return await _patch_status(api, Plural.CREDENTIALS, namespace, name, patch, None)


async def patch_task_metadata(
    api: ApiClient,
    namespace: str,
    name: str,
    patch: Mapping[str, Any],
    *,
    resource_version: str | None = None,
) -> Body:
    """Merge ``patch`` into the AgentTask's ``.metadata`` (e.g. ``{"finalizers": [...]}``)."""
    metadata = dict(patch)
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    custom = CustomObjectsApi(api)
    return await _merge_patch(
        custom.patch_namespaced_custom_object, Plural.TASKS, namespace, name, {"metadata": metadata}
    )


async def get_pod(api: ApiClient, namespace: str, name: str) -> Body | None:
    what = subject("Pod", namespace, name)
    return await get_or_none(what, CoreV1Api(api).read_namespaced_pod, name, namespace)


async def get_owner(api: ApiClient, namespace: str, kind: str, name: str) -> Body | None:
    """A Pod or Job that may own a task (None if gone; other kinds are not looked up)."""
    if kind == "Pod":
        return await get_pod(api, namespace, name)
    if kind == "Job":
        what = subject("Job", namespace, name)
        return await get_or_none(what, BatchV1Api(api).read_namespaced_job, name, namespace)
    return None


async def list_pods(api: ApiClient, namespace: str, label_selector: str | None) -> list[Body]:
    """Pods of a namespace matching a label selector (all pods if it is None or empty)."""
    what = subject("Pods", namespace)
    core = CoreV1Api(api)
    items, _ = await list_all(
        what, core.list_namespaced_pod, namespace, label_selector=label_selector
    )
    return items


async def _get(api: ApiClient, plural: Plural, namespace: str, name: str) -> Body | None:
    what = subject(KIND_OF[plural], namespace, name)
    custom = CustomObjectsApi(api)
    return await get_or_none(
        what, custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
    )


async def _patch_status(
    api: ApiClient,
    plural: Plural,
    namespace: str,
    name: str,
    patch: Mapping[str, Any],
    resource_version: str | None,
) -> Body:
    body: Body = {"status": dict(patch)}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    custom = CustomObjectsApi(api)
    return await _merge_patch(
        custom.patch_namespaced_custom_object_status, plural, namespace, name, body
    )


async def _merge_patch(
    method: Callable[..., Any], plural: Plural, namespace: str, name: str, body: Body
) -> Body:
    """``method`` (an object's or its status's patch) with ``body`` as a JSON merge patch."""
    return await call(
        subject(KIND_OF[plural], namespace, name),
        method,
        GROUP,
        VERSION,
        namespace,
        plural,
        name,
        body,
        _content_type=MERGE_PATCH,
    )
