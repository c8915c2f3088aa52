"""Restore a generated Secret that someone edited or deleted while its task is active.

The operator holds no credential values, so "restore" means: issue a fresh
credential into the Secret and revoke the one that was tampered with at once (its
value may have been copied). Edits are recognised by resourceVersion: the one the
operator last wrote is in the task's status (and in memory, for the moment between
writing the Secret and recording it).

Only a Secret that really is a task's generated Secret counts: its controller
ownerReference must carry the task's *uid* and its name must be the one the task
generates for that credential; a Secret that merely carries our labels and an
ownerReference naming a task is ignored. Checks run off the watch (services/coalesce.py),
one at a time per Secret, and a credential is re-issued at most once per
``AGENTCRED_RESTORE_INTERVAL`` (30 s).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping
from typing import Any

from agentcred.backends.base import BackendError
from agentcred.kube import resources
from agentcred.kube.errors import KubeError
from agentcred.kube.request_slots import acting_for
from agentcred.models import identity
from agentcred.models.api_names import MANAGED_SELECTOR, EventReason, Kind, Label
from agentcred.models.errors import SpecError
from agentcred.models.status import EntryState, Phase, parse_entries
from agentcred.services import authorization, issuance, lifecycle, maintenance, report
from agentcred.services.deps import Deps
from agentcred.services.errors import TaskFailed, TaskRetry
from agentcred.services.task_view import TaskView

log = logging.getLogger("agentcred.drift")
SELECTOR = f"{MANAGED_SELECTOR},{Label.CREDENTIAL}"  # the Secrets the operator generates


async def seed(deps: Deps, namespace: str | None) -> None:
    """Before the Secret watch starts: learn from the tasks' statuses which version of
    each generated Secret the operator wrote, so that the watch's first list (every
    generated Secret, after a restart) queues a check only for Secrets that changed
    while no operator watched, instead of two task reads per Secret."""
    try:
        parts = await resources.list_task_parts(deps.api, written_versions, namespace)
    except KubeError as exc:
        log.warning("Could not list AgentTasks to seed drift detection (%s); checking each", exc)
        return
    for versions in parts:
        deps.written.update(versions)


def written_versions(task: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(namespace, Secret name) -> resourceVersion recorded in the status of an active task."""
    meta, status = task.get("metadata") or {}, task.get("status") or {}
    if status.get("phase") != Phase.ACTIVE.value or meta.get("deletionTimestamp"):
        return {}
    namespace = sys.intern(str(meta.get("namespace") or ""))  # one copy for every task's
    return {
        (namespace, entry.secret_name): entry.secret_resource_version
        for entry in parse_entries(status.get("credentials"))
        if entry.state is EntryState.ISSUED and entry.secret_name and entry.secret_resource_version
    }


def _owner_task(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the AgentTask that controls this Secret, as its ownerReference says."""
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == Kind.TASK and owner.get("controller"):
            return str(owner.get("name") or ""), str(owner.get("uid") or "")
    return None


async def on_secret_event(deps: Deps, event_type: str, secret: Mapping[str, Any]) -> None:
    """Called by the Secret watch: hand the check to the drift queue and return at once."""
    meta = secret.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    credential = (meta.get("labels") or {}).get(Label.CREDENTIAL)
    owner = _owner_task(meta)
    version = meta.get("resourceVersion")
    if not credential or owner is None or not deps.settings.serves(namespace):
        return
    if event_type == "DELETED":
        if (namespace, name) in deps.removed:  # we deleted it (a task's cleanup)
            deps.removed.discard((namespace, name))
            return
    elif deps.written.get((namespace, name)) == version:
        return

    async def check() -> None:
        await _check(deps, namespace, name, credential, owner, event_type, version)

    deps.drift.submit((namespace, name), check)


async def _check(
    deps: Deps,
    namespace: str,
    name: str,
    credential: str,
    owner: tuple[str, str],
    event_type: str,
    version: str | None,
) -> None:
    """Under the owner's lock, read the task once, decide, restore; a restore that must
    wait for the rate limit waits without the lock, then reads again."""
    while True:
        async with acting_for(namespace), deps.locks.hold(owner[1]):
            if event_type != "DELETED" and deps.written.get((namespace, name)) == version:
                return  # our own write, its version recorded since the event came
            task = await _read_task(deps, namespace, owner[0])
            if task is None or not _ours(task, owner[1], credential, name):
                log.debug(
                    "Secret %s/%s claims to be generated for %s but is not; ignored",
                    namespace,
                    name,
                    owner[0],
                )
                return
            wait = _rate_limit_wait(deps, task, credential)
            if wait <= 0:
                if _tampered(task, credential, event_type, version):
                    await _restore(deps, task, credential, event_type)
                return
        log.info(
            "%s/%s: %s re-issued less than %.0f s ago; restore in %.0f s",
            namespace,
            owner[0],
            credential,
            deps.settings.restore_interval.total_seconds(),
            wait,
        )
        await asyncio.sleep(wait)


async def _read_task(deps: Deps, namespace: str, name: str) -> TaskView | None:
    body = await resources.get_task(deps.api, namespace, name)
    if body is None:
        return None
    try:
        return TaskView.from_body(body)
    except SpecError:
        return None


def _ours(task: TaskView, owner_uid: str, credential: str, secret_name: str) -> bool:
    """The Secret is this task's (uid, not just name) generated Secret for ``credential``."""
    ref = task.ref(credential)
    return task.uid == owner_uid and ref is not None and task.secret_name(ref) == secret_name


def _rate_limit_wait(deps: Deps, task: TaskView, credential: str) -> float:
    """At most one re-issue per credential per restore interval: seconds a later event
    waits (coalescing in the drift queue) until the interval since the last issue passed."""
    entry = task.entry(credential)
    issued = entry.issued_at if entry is not None else None
    if issued is None:
        return 0.0
    return (issued + deps.settings.restore_interval - deps.clock()).total_seconds()


def _tampered(task: TaskView, credential: str, event_type: str, version: str | None) -> bool:
    if task.ended or task.deleting or task.phase != Phase.ACTIVE:
        return False
    entry = task.entry(credential)
    if entry is None or entry.state is not EntryState.ISSUED:
        return False
    return event_type == "DELETED" or version != entry.secret_resource_version


async def _restore(deps: Deps, task: TaskView, credential: str, event_type: str) -> None:
    ref = task.ref(credential)
    if ref is None:
        return
    what = "deleted" if event_type == "DELETED" else "edited"
    if await authorization.quarantined(deps, task) is not None:
        return  # being ended by a quarantine, its Secrets deleted first: nothing to restore
    held = await lifecycle.hold_identity(deps, task)  # never restore for another identity
    if held is None:
        return
    task = held
    # Written by someone else since: the write takes the careful way (create, or read and
    # check it is ours), not a patch at the version we wrote, which would fail anyway.
    deps.written.pop((task.namespace, task.secret_name(ref)), None)
    try:
        bound = await issuance.resolve(deps, task, ref)
        await maintenance.reissue(
            deps, task, ref, bound, overlap=maintenance.NO_OVERLAP, reason=EventReason.RESTORED
        )
        told = (
            f"{credential}: Secret {task.secret_name(ref)} was {what}; "
            "restored with a fresh credential (the exposed one is revoked)"
        )
    except (TaskRetry, TaskFailed, BackendError) as problem:
        if isinstance(problem, TaskFailed) and problem.reason in maintenance.CEILING_REASONS:
            await maintenance.fail_over_ceiling(deps, task, problem)  # as any re-issue
            return
        if isinstance(problem, TaskFailed) and problem.reason == identity.IDENTITY_CHANGED:
            await lifecycle.end_for_identity(deps, task, problem.message)
            return
        told = f"{credential}: Secret was {what}; restore failed: {problem}"
    await report.event(deps.api, task, EventReason.RESTORED, told, warning=True)
