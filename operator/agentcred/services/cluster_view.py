"""What resolve reads of the cluster (an AgentCredential's spec, a CredentialBackend's
spec, a namespace's labels), answered from the watch-fed cache (services/lookups.py),
and what the watch handlers feed it.

Only skeletons are kept: a spec or a label map, never the whole object (no
managedFields, status or annotations), and only for objects of the namespaces this
operator serves. An AgentCredential or CredentialBackend being deleted
(``deletionTimestamp`` set) counts as gone: it allows nothing new, from the watch or
from a GET alike.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from agentcred.kube import resources
from agentcred.models.api_names import Kind
from agentcred.services.deps import Deps

NAMESPACE = "Namespace"
Spec = Mapping[str, Any]


async def credential(deps: Deps, namespace: str, name: str) -> Spec | None:
    """The spec of AgentCredential ``namespace/name`` (None: it does not exist)."""

    async def fetch() -> Spec | None:
        return _spec(await resources.get_credential(deps.api, namespace, name))

    spec: Spec | None = await deps.lookups.get((Kind.CREDENTIAL, namespace, name), fetch)
    return spec


async def backend(deps: Deps, name: str) -> Spec | None:
    """The spec of CredentialBackend ``name`` (None: it does not exist)."""

    async def fetch() -> Spec | None:
        return _spec(await resources.get_backend(deps.api, name))

    spec: Spec | None = await deps.lookups.get((Kind.BACKEND, name), fetch)
    return spec


async def namespace_labels(deps: Deps, name: str) -> Mapping[str, str] | None:
    """The labels of namespace ``name`` (None: it does not exist)."""

    async def fetch() -> Mapping[str, str] | None:
        return await resources.namespace_labels(deps.api, name)

    labels: Mapping[str, str] | None = await deps.lookups.get((NAMESPACE, name), fetch)
    return labels


def observe(deps: Deps, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
    """A watch event of an AgentCredential, a CredentialBackend or a Namespace
    (``kind``: ``Kind.CREDENTIAL``, ``Kind.BACKEND`` or ``NAMESPACE``). ``event_type`` None
    is Kopf's word for an object it listed rather than saw change (services/lookups.py:
    a re-list drops what it no longer holds)."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not name:
        return
    if event_type is None:
        deps.lookups.listed(kind)
    if kind == NAMESPACE:  # a terminating namespace keeps its labels, as a GET shows them
        labels = None if event_type == "DELETED" else dict(meta.get("labels") or {})
        deps.lookups.observe((NAMESPACE, name), labels)
        return
    gone = event_type == "DELETED" or bool(meta.get("deletionTimestamp"))
    key = (kind, name) if kind == Kind.BACKEND else (kind, str(meta.get("namespace")), name)
    deps.lookups.observe(key, None if gone else _spec(body))


def _spec(body: Mapping[str, Any] | None) -> Spec | None:
    """What is kept of an object: its spec (None when it is missing or being deleted)."""
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return copy.deepcopy(dict(body.get("spec") or {}))
