"""Namespace handler: keep the operator's cache of the served namespaces' labels from the
watch (CredentialBackend namespaceSelectors and quarantines match them; resolve reads
the cache, services/cluster_view.py). Only the labels are kept, never the object.

An event handler only: Kopf writes nothing onto a namespace (no finalizer, no
annotation) for it."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.handlers.filters import served_namespace
from agentcred.handlers.memo import OperatorMemo
from agentcred.services import cluster_view


@kopf.on.event("v1", "namespaces", when=served_namespace)
async def observed(type: str | None, body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    """Every event of a served namespace: its labels in the cache at once."""
    cluster_view.observe(memo.deps, cluster_view.NAMESPACE, type, body)
