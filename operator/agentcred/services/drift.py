"""Restore a generated Secret that someone edited or deleted while its task is active.

The operator holds no credential values, so "restore" means: issue a fresh
credential into the Secret and revoke the one that was tampered with at once (its
value may have been copied). Edits are recognised by resourceVersion: the one the
operator last wrote is in the task's status (and in memory, for the moment between
writing the Secret and recording it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agentcred.backends.base import BackendError
from agentcred.kube import resources
from agentcred.models.errors import SpecError
from agentcred.models.status import Phase
from agentcred.services import issuance, lifecycle, maintenance, report, task_status
from agentcred.services.deps import Deps
from agentcred.services.errors import TaskFailed, TaskRetry
from agentcred.services.task_view import KIND, TaskView

log = logging.getLogger("agentcred.drift")
SELECTOR = "app.kubernetes.io/managed-by=agentcred,agentcred.io/credential"


def _owner_task(meta: Mapping[str, Any]) -> str | None:
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("controller"):
            name: str = owner["name"]
            return name
    return None


async def on_secret_event(deps: Deps, event_type: str, secret: Mapping[str, Any]) -> None:
    meta = secret.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    credential = (meta.get("labels") or {}).get(issuance.CREDENTIAL_LABEL)
    task_name = _owner_task(meta)
    version = meta.get("resourceVersion")
    if not credential or not task_name:
        return
    if event_type != "DELETED" and deps.written.get((namespace, name)) == version:
        return
    body = await resources.get_task(deps.api, namespace, task_name)
    if body is None:
        return
    try:
        task = TaskView.from_body(body)
    except SpecError:
        return
    async with deps.locks.hold(task.uid):
        fresh = await lifecycle.reload(deps, task)
        if fresh is None or not _tampered(fresh, credential, event_type, version):
            return
        await _restore(deps, fresh, credential, event_type)


def _tampered(task: TaskView, credential: str, event_type: str, version: str | None) -> bool:
    if task.ended or task.deleting or task.phase != Phase.ACTIVE:
        return False
    entry = task.entry(credential)
    if entry is None or entry.get("state") != task_status.ISSUED:
        return False
    return event_type == "DELETED" or version != entry.get("secretResourceVersion")


async def _restore(deps: Deps, task: TaskView, credential: str, event_type: str) -> None:
    ref = task.ref(credential)
    if ref is None:
        return
    what = "deleted" if event_type == "DELETED" else "edited"
    try:
        resolved = await issuance.resolve(deps, task, ref)
        await maintenance.reissue(
            deps, task, ref, resolved, overlap=maintenance.NO_OVERLAP, reason=report.RESTORED
        )
    except (TaskRetry, TaskFailed, BackendError) as problem:
        await report.event(
            deps.api,
            task,
            report.RESTORED,
            f"{credential}: Secret was {what}; restore failed: {problem}",
            warning=True,
        )
        return
    await report.event(
        deps.api,
        task,
        report.RESTORED,
        f"{credential}: Secret {task.secret_name(ref)} was {what}; "
        "restored with a fresh credential (the exposed one is revoked)",
        warning=True,
    )
