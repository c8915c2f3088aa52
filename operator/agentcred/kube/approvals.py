"""Reading AgentTaskApprovals and writing their status (the operator's judgement of each).

The operator never writes an approval's spec or metadata: approvers own them, and the
admission policies keep them as written (manifests/base/approval-admission.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client import ApiClient, CustomObjectsApi

from agentcred.kube.calls import call, list_all
from agentcred.kube.errors import subject
from agentcred.kube.objects import Body
from agentcred.models.api_names import GROUP, VERSION, Kind, Plural

MERGE_PATCH = "application/merge-patch+json"


async def list_for_task(api: ApiClient, namespace: str, task: str) -> list[Body]:
    """The approvals of a namespace that name ``task`` (spec.taskRef.name)."""
    custom = CustomObjectsApi(api)
    items, _ = await list_all(
        subject("AgentTaskApprovals", namespace),
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        Plural.APPROVALS,
    )
    return [i for i in items if ((i.get("spec") or {}).get("taskRef") or {}).get("name") == task]


async def patch_status(api: ApiClient, namespace: str, name: str, patch: Mapping[str, Any]) -> Body:
    """Merge ``patch`` into the approval's ``.status``."""
    custom = CustomObjectsApi(api)
    return await call(
        subject(Kind.APPROVAL, namespace, name),
        custom.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        Plural.APPROVALS,
        name,
        {"status": dict(patch)},
        _content_type=MERGE_PATCH,
    )
