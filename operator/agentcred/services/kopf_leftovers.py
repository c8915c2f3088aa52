"""What operators before issue 22 left on an AgentTask, removed on upgrade.

They drove tasks with Kopf's create/update/delete handlers, so every task carried the
finalizer ``settings.finalizer`` (``agentcred.io/revoke-credentials``) and Kopf's
diff-base and progress annotations (``KOPF_TASK_ANNOTATIONS``). Tasks are now driven by
event handlers that store nothing on the object (services/task_events.py). The first time
an upgraded operator sees such a task:

* a live one: the finalizer and the annotations go in one PATCH (at the version seen: a
  task changed meanwhile is left for its next event);
* one being deleted: it is finalized first (everything revoked, as the old delete
  handler did), then the same PATCH releases it.
"""

from __future__ import annotations

import logging
from typing import Any

from agentcred.kube import resources
from agentcred.kube.errors import KubeConflict, KubeNotFound
from agentcred.models.api_names import KOPF_TASK_ANNOTATIONS
from agentcred.services.deps import Deps
from agentcred.services.task_view import TaskView

log = logging.getLogger("agentcred.tasks")


def leftovers(task: TaskView, finalizer: str) -> dict[str, Any] | None:
    """The metadata merge patch that removes the old finalizer and Kopf's annotations
    from ``task`` (None: it carries neither). Pure."""
    patch: dict[str, Any] = {}
    if finalizer in task.finalizers:
        kept = [f for f in task.finalizers if f != finalizer]
        patch["finalizers"] = kept or None  # a merge patch replaces the list whole
    stale = [key for key in KOPF_TASK_ANNOTATIONS if key in task.annotations]
    if stale:
        patch["annotations"] = dict.fromkeys(stale)
    return patch or None


async def remove(deps: Deps, task: TaskView) -> TaskView | None:
    """Remove what ``leftovers`` names, in one PATCH at ``task``'s resourceVersion (the
    finalizer list is replaced whole: only at the version we decided from); the task as
    patched, ``task`` itself when there was nothing to remove, None when it changed
    (409: its next event decides again) or is gone."""
    patch = leftovers(task, deps.settings.finalizer)
    if patch is None:
        return task
    try:
        body = await resources.patch_task_metadata(
            deps.api, task.namespace, task.name, patch, resource_version=task.resource_version
        )
    except (KubeConflict, KubeNotFound):
        log.debug("%s/%s changed before its Kopf leftovers went", task.namespace, task.name)
        return None
    log.info(
        "%s/%s: the old finalizer and Kopf's annotations removed (upgrade)",
        task.namespace,
        task.name,
    )
    removed = TaskView.from_body(body)
    note_version(deps, removed)
    return removed


def note_version(deps: Deps, task: TaskView) -> None:
    """Remember the resourceVersion this process last wrote for ``task`` (read once)."""
    number = version_number(task.resource_version)
    if number is not None:
        deps.versions[task.uid] = number


def version_number(version: str | None) -> int | None:
    """A resourceVersion as an integer (etcd's revision), None when it is not one: the
    API promises an opaque string, so a version we cannot compare is read again."""
    if version is None or not version.isdigit():
        return None
    return int(version)
