"""AgentTasks are driven by their watch events, decided from state, never from a diff.

Before issue 22 Kopf's create/update/delete handlers drove them: Kopf put a finalizer on
every task and wrote its diff-base and progress annotations (PATCHes at the API server
per task), and a namespace deleted while no operator ran stayed Terminating for good. An
event handler stores nothing on the object, so the operator now decides what an event
means itself:

* ``decide`` (pure): from the event's type, the task as the event shows it and what this
  process knows (``Known``: the last resourceVersion it wrote, whether it finished the
  task's cleanup, whether a retry is already scheduled, the renewal value it honoured),
  one ``Action``: resume (the initial listing), start, complete, clean up, recheck the
  identity or the approval, renew on request, finalize (deletion under way), gone (the
  DELETED event), skip (older than a status we wrote: its event follows), or nothing.
* ``on_event``: runs it. The event's body is the read ("read once"): no GET of the task.
  A temporary error schedules the task's retry through the operator's scheduler (our
  backoff, or the error's ``retry_after``; ``deps.redo`` makes that step take the full
  path); a permanent one is logged and counted; nothing raises into Kopf.

Deletion: the DELETED event queues the task's cleanup on the scheduler (``lifecycle.gone``),
which revokes every session of the task's lease record (in the operator's namespace,
owned by nobody, so it outlives the task), deletes the generated Secrets and posts
TaskEnded (``lifecycle.gone_again``); a deletion missed while no operator ran
is the sweep's (services/sweep.py). Tasks from before, with the old finalizer and Kopf's
annotations: services/kopf_leftovers.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from agentcred import metrics
from agentcred.models import identity
from agentcred.models.errors import SpecError, retry_decision
from agentcred.models.status import EntryState
from agentcred.services import approval, kopf_leftovers, lifecycle, renew_request
from agentcred.services.deps import Deps
from agentcred.services.task_view import TaskView
from agentcred.services.timing import backoff

log = logging.getLogger("agentcred.tasks")

DELETED = "DELETED"


class Action(Enum):
    NOTHING = "nothing"
    SKIP = "skip"  # older than a status this process wrote: the event of that write follows
    RESUME = "resume"  # the initial listing (a restart): lifecycle.resume
    START = "start"
    COMPLETE = "complete"  # spec.completed / spec.failureReason on a running task
    CLEANUP = "cleanup"  # ended, and this process has not finished its cleanup
    IDENTITY = "identity"  # acts for another identity than it was issued under
    APPROVAL = "approval"  # edited since its approval
    RENEW = "renew"  # agentcred.io/renew-requested-at with a value not yet honoured
    FINALIZE = "finalize"  # deletionTimestamp set (the old finalizer, or someone else's)
    GONE = "gone"  # the DELETED event


@dataclass(frozen=True)
class Known:
    """What this process knows of a task beside its body."""

    seen: bool = False  # an event of it was handled here (a re-list after 410 is no restart)
    written: int | None = None  # the resourceVersion of its last status write here
    cleaned: bool = False  # its cleanup finished here, nothing issued since
    retrying: bool = False  # an action failed; its retry is scheduled (deps.redo)
    renewed: str | None = None  # the renew-requested-at value honoured here

    @classmethod
    def of(cls, deps: Deps, uid: str) -> Known:
        return cls(
            seen=uid in deps.seen,
            written=deps.versions.get(uid),
            cleaned=uid in deps.cleaned,
            retrying=uid in deps.redo,
            renewed=deps.renew_requests.get(uid),
        )


@dataclass(frozen=True)
class Decision:
    action: Action
    # The old finalizer or Kopf's annotations are on it (services/kopf_leftovers.py):
    # removed in one PATCH first (after finalizing, for a task being deleted).
    leftovers: bool = False


def decide(event_type: str | None, task: TaskView, known: Known, finalizer: str) -> Decision:
    """What an event of ``task`` means. Pure: the state in the body and ``known``."""
    if event_type == DELETED:
        return Decision(Action.GONE)
    seen = kopf_leftovers.version_number(task.resource_version)
    if known.written is not None and seen is not None and seen < known.written:
        return Decision(Action.SKIP)
    leftovers = kopf_leftovers.leftovers(task, finalizer) is not None
    if task.deleting:
        if known.retrying or (known.cleaned and not leftovers):
            return Decision(Action.NOTHING)  # its retry is scheduled, or nothing is left
        return Decision(Action.FINALIZE, leftovers)
    return Decision(_running(event_type, task, known), leftovers)


def _running(event_type: str | None, task: TaskView, known: Known) -> Action:
    if not known.seen and (event_type is None or task.phase is not None):
        return Action.RESUME  # listed at start: lifecycle.resume decides from the status
    # Listed again (Kopf re-lists after a watch's 410): as any change, decided from state.
    if task.ended:
        issued = any(e.state is EntryState.ISSUED for e in task.entries)
        return (
            Action.CLEANUP if issued and not (known.cleaned or known.retrying) else Action.NOTHING
        )
    if task.phase is None:  # a scheduled retry takes the full path (maintenance.step)
        return Action.NOTHING if known.retrying else Action.START
    # What a person or the agent asked is acted on now, a retry scheduled or not.
    if lifecycle.requested_end(task) is not None:
        return Action.COMPLETE
    if identity.check(task.status, task.spec).changed:
        return Action.IDENTITY
    if approval.voided(task) is not None:
        return Action.APPROVAL
    value = renew_request.pending_value(task)
    if value is not None and value != known.renewed:
        return Action.RENEW
    return Action.NOTHING


async def on_event(deps: Deps, event_type: str | None, body: Mapping[str, Any]) -> Action:
    """Decide and act; never raises (see the module's docstring). The action decided."""
    try:
        task = TaskView.from_body(body)
    except SpecError as exc:
        if event_type != DELETED:  # nothing is issued for a spec that cannot be read
            metrics.count_error("task", exc)
            log.error("AgentTask %s: %s", _name(body), exc)
        return Action.NOTHING
    decision = decide(event_type, task, Known.of(deps, task.uid), deps.settings.finalizer)
    if event_type != DELETED:
        deps.seen.add(task.uid)
    try:
        await _act(deps, decision, event_type, task, body)
    except Exception as exc:
        _failed(deps, decision.action, task, exc)
    return decision.action


async def _act(
    deps: Deps,
    decision: Decision,
    event_type: str | None,
    task: TaskView,
    body: Mapping[str, Any],
) -> None:
    action = decision.action
    if decision.leftovers and action is not Action.FINALIZE:
        stripped = await kopf_leftovers.remove(deps, task)
        if stripped is None:  # changed meanwhile: its next event decides again, as a
            deps.seen.discard(task.uid)  # first sight (a listing's resume is not lost)
            return
        # Acted on as patched (its version is the one we wrote: read once still holds).
        body = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": stripped.resource_version},
        }
    if action is Action.RESUME:
        await lifecycle.resume(deps, body)
    elif action is Action.START:
        await lifecycle.start(deps, body)
    elif action in (Action.COMPLETE, Action.CLEANUP):
        await lifecycle.complete(deps, body)
    elif action is Action.IDENTITY:
        await lifecycle.recheck_identity(deps, body)
    elif action is Action.APPROVAL:
        await lifecycle.recheck_approval(deps, body)
    elif action is Action.RENEW:
        await renew_request.honour(deps, body)
    elif action is Action.FINALIZE:
        await lifecycle.finalize(deps, body)
    elif action is Action.GONE:
        lifecycle.gone(deps, body)  # queued: the handler returns, Kopf drops the body
    elif action is Action.SKIP:
        log.debug(
            "%s/%s: event older than our last write (%s)", task.namespace, task.name, event_type
        )


def _failed(deps: Deps, action: Action, task: TaskView, exc: Exception) -> None:
    """An action failed: a temporary error is retried by the scheduler (the step takes
    the full path: ``deps.redo``), a permanent one is reported; an error the core does
    not know is logged with its trace and retried as a temporary one."""
    decision = retry_decision(exc)
    if decision is not None and decision.permanent:
        metrics.count_error("task", exc)
        log.error(
            "%s/%s %s: %s (permanent: not retried)", task.namespace, task.name, action.value, exc
        )
        return
    metrics.count_error("task", exc)
    if decision is None:
        log.error(
            "%s/%s %s failed; retrying", task.namespace, task.name, action.value, exc_info=exc
        )
    else:
        log.warning("%s/%s %s: %s; retrying", task.namespace, task.name, action.value, exc)
    if action is Action.RENEW:
        # As before: the value stays pending and the task's next event tries again.
        deps.renew_requests.pop(task.uid, None)
        return
    if action is not Action.GONE:  # a gone task's retry is from deps.departed
        deps.redo.add(task.uid)
    attempt = deps.scheduler.attempts(task.uid)
    retry_after = decision.retry_after if decision is not None else None
    deps.scheduler.retry(lifecycle.key_of(task), retry_after or backoff(attempt, deps.rng))


def _name(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
