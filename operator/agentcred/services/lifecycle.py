"""An AgentTask from start to end: issue every credential, end the task, revoke everything.

``start`` is idempotent: it issues only what the task's status does not already
record (with its Secret present), so an operator restart never issues twice.
``end`` records the final phase first and then cleans up; cleanup revokes every
session in the task's lease-record Secret (which parents every lease it ever issued,
recorded or not), deletes the generated Secrets and retries until that is done.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from agentcred import metrics, tracing
from agentcred.backends.base import BackendError, Issued
from agentcred.kube import resources, secrets
from agentcred.kube.request_slots import acting_for
from agentcred.models import identity
from agentcred.models.api_names import EventReason, Reason
from agentcred.models.errors import retry_decision
from agentcred.models.status import EntryState, Phase, TaskStatus
from agentcred.models.task import CredentialRef
from agentcred.services import (
    approval,
    authorization,
    issuance,
    kopf_leftovers,
    lease_records,
    pod_binding,
    report,
    revocation,
    task_status,
)
from agentcred.services.deps import Deps
from agentcred.services.due import initial_delay
from agentcred.services.errors import TaskFailed, TaskRetry
from agentcred.services.scheduler import TaskKey
from agentcred.services.task_view import TaskView
from agentcred.services.timing import backoff

log = logging.getLogger("agentcred.tasks")


async def reload(deps: Deps, task: TaskView) -> TaskView | None:
    body = await resources.get_task(deps.api, task.namespace, task.name)
    if body is None or body["metadata"]["uid"] != task.uid:
        return None
    return TaskView.from_body(body)


async def current(deps: Deps, task: TaskView) -> TaskView | None:
    """Read once: the task as the watch delivered it (its body is the read), under its
    lock; None when this process has written a newer status since (the event of that
    write follows and is decided then). A resourceVersion that is not an integer cannot
    be compared: the task is read again."""
    written = deps.versions.get(task.uid)
    if written is None:
        return task
    seen = kopf_leftovers.version_number(task.resource_version)
    if seen is None:
        return await reload(deps, task)
    return task if seen >= written else None


async def patch(deps: Deps, task: TaskView, status: TaskStatus | Mapping[str, Any]) -> TaskView:
    """Merge ``status`` into the task's; every write says which generation it was decided
    from (``observedGeneration``), whatever it changes."""
    if task.generation is not None:
        status = {**status, "observedGeneration": task.generation}
    body = await resources.patch_task_status(deps.api, task.namespace, task.name, status)
    patched = TaskView.from_body(body)
    kopf_leftovers.note_version(deps, patched)
    count_active(deps, patched)
    return patched


def count_active(deps: Deps, task: TaskView) -> None:
    if task.phase == Phase.ACTIVE and not task.deleting:
        deps.active.add(task.uid)
    else:
        deps.active.discard(task.uid)
    metrics.ACTIVE_TASKS.set(len(deps.active))


def key_of(task: TaskView) -> TaskKey:
    return TaskKey(task.uid, task.namespace, task.name)


async def resume(deps: Deps, body: Mapping[str, Any], attempt: int = 0) -> None:
    """The operator (re)started and lists a task: an active task whose credentials are all
    issued only gets its schedule back, from its status, with no call; anything else is
    started as if new."""
    task = TaskView.from_body(body)
    count_active(deps, task)
    complete = all(
        (e := task.entry(ref.name)) is not None and e.state is EntryState.ISSUED
        for ref in task.spec.credentials
    )
    # A pod-bound task takes the full path: its pods may have changed while no operator
    # watched them, and the pod watch's first list may come before it is registered.
    bound = task.spec.pod_selector is not None
    # An identity changed while no operator watched takes the full path too, which ends it.
    same = not identity.check(task.status, task.spec).changed
    if (
        task.phase == Phase.ACTIVE
        and complete
        and requested_end(task) is None
        and not bound
        and same
    ):
        delay = initial_delay(task, deps.clock())
        if delay is not None:
            deps.scheduler.schedule(key_of(task), delay)
        return
    if task.ended and not any(e.state is EntryState.ISSUED for e in task.entries):
        return  # nothing to revoke here; leftover sessions are the sweep's
    await start(deps, body, attempt)


async def start(deps: Deps, body: Mapping[str, Any], attempt: int = 0) -> None:
    """Create/resume: issue what is missing; end the task if it is already over."""
    task = TaskView.from_body(body)
    async with (
        acting_for(task.namespace),
        deps.admission.hold(task.namespace),
        deps.locks.hold(task.uid),
    ):
        fresh = await current(deps, task)
        if fresh is None or fresh.deleting:
            return
        started = await _start(deps, fresh, attempt)
    if started is None:  # it ended here, its cleanup done (or TaskRetry raised): no step
        deps.scheduler.forget(task.uid)
        return
    delay = initial_delay(started, deps.clock())
    if delay is not None:  # from the status just written: no read to learn it again
        deps.scheduler.schedule(key_of(task), delay)


async def resume_issuing(deps: Deps, task: TaskView, attempt: int) -> TaskView | None:
    """Issue what an active task lost (called by the scheduled step, under the task's
    lock); the task as written, None when it ended."""
    return await _start(deps, task, attempt)


async def _start(deps: Deps, task: TaskView, attempt: int) -> TaskView | None:
    """Issue what is missing; the task as last written when it is active, None when it
    ended here (its next step is then for the scheduler to find out)."""
    if task.ended:
        deps.pods.unregister(task.namespace, task.uid)
        if await cleanup_pending(deps, task):
            await cleanup(deps, task)
        return None
    verdict = identity.check(task.status, task.spec)
    if verdict.changed:
        await end_for_identity(deps, task, verdict.message)
        return None
    deps.pods.register(task)
    now = deps.clock()
    if await _end_if_over(deps, task, now):
        return None
    # A new task's Pending fields ride on its first status patch (the first credential's
    # entry, or the reason it waits), and the last credential's patch makes it Active:
    # one status write per credential, none of their own. The identity it acts for is
    # recorded in the same patch (models/identity.py).
    starting: TaskStatus = (
        task_status.pending(task.status, task.generation, now) if task.phase is None else {}
    )
    if verdict.record:
        starting = {**starting, "identity": identity.TaskIdentity.of(task.spec).status()}
    quarantine = await authorization.quarantined(deps, task)
    if quarantine is not None:  # refused before any backend call
        await end(deps, task, Phase.FAILED, Reason.QUARANTINED, quarantine.message, starting)
        return None
    todo = [ref for ref in task.spec.credentials if not await _already_issued(deps, task, ref)]
    # A person's approval first, where a backend asks for it (services/approval.py):
    # nothing is requested from a backend while the task waits.
    gate = await approval.gate(deps, task, todo, starting)
    if gate.end is not None:
        await end(deps, task, *gate.end, {**starting, **gate.status})
        return None
    if gate.wait is not None:
        if gate.wait:
            task = await patch(deps, task, gate.wait)
        deps.scheduler.schedule(key_of(task), gate.delay)
        return task
    starting = {**starting, **gate.status}
    for ref in todo:
        try:
            task = await _issue_into_status(
                deps, task, ref, starting, activate=ref is todo[-1] and task.phase != Phase.ACTIVE
            )
        except TaskFailed as failure:
            await report.event(
                deps.api, task, EventReason.ISSUE_FAILED, failure.message, warning=True
            )
            # A new task's Pending fields ride on its Failed patch: one status write.
            await end(deps, task, Phase.FAILED, failure.reason, failure.message, starting)
            return None
        except TaskRetry as retry:
            await _waiting(deps, task, ref, retry.reason, retry.message, starting)
            raise TaskRetry(
                retry.reason, retry.message, retry.retry_after or backoff(attempt, deps.rng)
            ) from None
        starting = {}
    if starting:  # nothing was missing: still record the identity (a task from before it was)
        task = await patch(deps, task, starting)
    if task.phase != Phase.ACTIVE:
        task = await patch(
            deps, task, task_status.active(task.status, task.entries, task.generation, deps.clock())
        )
    return await apply_pods(deps, task)


async def hold_identity(deps: Deps, task: TaskView) -> TaskView | None:
    """Before acting for a running task: the task (its identity recorded if it was not
    yet), or None when it acts for another identity than it was first issued under and
    has just ended ``Failed``/``IdentityChanged`` (models/identity.py). Under its lock."""
    verdict = identity.check(task.status, task.spec)
    if verdict.changed:
        await end_for_identity(deps, task, verdict.message)
        return None
    if verdict.record:
        return await patch(deps, task, {"identity": identity.TaskIdentity.of(task.spec).status()})
    return task


async def recheck_identity(deps: Deps, body: Mapping[str, Any]) -> None:
    """The spec's identity fields changed: a running task that acts for another identity
    than it was first issued under ends at once (a task not started yet is the create
    handler's, which checks the same before issuing)."""
    task = TaskView.from_body(body)
    async with (
        acting_for(task.namespace),
        deps.admission.hold(task.namespace),
        deps.locks.hold(task.uid),
    ):
        fresh = await current(deps, task)
        if fresh is None or fresh.ended or fresh.deleting or fresh.phase is None:
            return
        await hold_identity(deps, fresh)


async def recheck_approval(deps: Deps, body: Mapping[str, Any]) -> None:
    """The spec changed: a task that was approved for an earlier generation ends at once
    (everything revoked): an approval holds for the task as it was approved."""
    task = TaskView.from_body(body)
    async with deps.admission.hold(task.namespace), deps.locks.hold(task.uid):
        fresh = await current(deps, task)
        if fresh is None or fresh.ended or fresh.deleting or fresh.spec.completed:
            return
        await end_if_voided(deps, fresh)


async def end_if_voided(deps: Deps, task: TaskView) -> bool:
    """End an approved task edited since its approval (under its lock); whether it did."""
    why = approval.voided(task)
    if why is None:
        return False
    log.warning("%s/%s: %s; ending the task", task.namespace, task.name, why)
    await approval.mark_voided(deps, task)
    await end(deps, task, Phase.FAILED, Reason.APPROVAL_VOIDED, why)
    return True


async def end_for_identity(deps: Deps, task: TaskView, message: str) -> None:
    """End a task whose identity changed: every session revoked, every Secret it ever
    generated deleted, nothing issued for the new identity."""
    log.warning("%s/%s: %s; ending the task", task.namespace, task.name, message)
    await end(deps, task, Phase.FAILED, identity.IDENTITY_CHANGED, message)


def requested_end(task: TaskView) -> tuple[Phase, str, str] | None:
    """The end its creator asked for: ``spec.failureReason`` (the agent reports a failure:
    Failed, ``AgentReported``, its words as the message) before ``spec.completed``."""
    if task.spec.failure_reason is not None:
        return Phase.FAILED, Reason.AGENT_REPORTED, task.spec.failure_reason
    if task.spec.completed:
        return Phase.SUCCEEDED, Reason.COMPLETED, "spec.completed is true"
    return None


async def _end_if_over(deps: Deps, task: TaskView, now: datetime.datetime) -> bool:
    """End a task that is completed, reported failed or past its deadline; whether it ended."""
    asked = requested_end(task)
    if asked is not None:
        await end(deps, task, *asked)
        return True
    if task.deadline is not None and task.deadline <= now:
        await end(
            deps, task, Phase.EXPIRED, Reason.DEADLINE_EXCEEDED, "activeDeadlineSeconds passed"
        )
        return True
    return False


async def apply_pods(deps: Deps, task: TaskView) -> TaskView | None:
    """Record the task's pods; end the task when they say so (under the task's lock).
    The task as written, or None when it ended."""
    record, outcome = await pod_binding.assess(deps, task)
    if record is not None:
        task = await patch(deps, task, {"pods": record})
    if outcome is not None:
        await end(deps, task, *outcome)
        return None
    return task


async def check_pods(deps: Deps, namespace: str, name: str) -> None:
    """A selected pod changed: re-assess its task (registered in ``deps.pods``, whose uid
    is its lock: the task is read once, under it)."""
    uid = deps.pods.uid_of(namespace, name)
    if uid is None:
        return  # no longer bound to pods: ended, deleted, or its podSelector removed
    async with acting_for(namespace), deps.locks.hold(uid):
        body = await resources.get_task(deps.api, namespace, name)
        task = TaskView.from_body(body) if body is not None else None
        if task is None or task.uid != uid or task.ended or task.deleting:
            deps.pods.unregister(namespace, uid)
            return
        await apply_pods(deps, task)


async def _already_issued(deps: Deps, task: TaskView, ref: CredentialRef) -> bool:
    entry = task.entry(ref.name)
    if entry is None or entry.state is not EntryState.ISSUED:
        return False
    info = await secrets.get_secret_info(deps.api, task.namespace, task.secret_name(ref))
    return info is not None


async def _issue_into_status(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    starting: Mapping[str, Any],
    *,
    activate: bool,
) -> TaskView:
    """Issue one credential and record it, with ``starting`` fields (a new task's Pending)
    and, when ``activate``, the task's move to Active, in the same status patch."""
    cid = task.correlation_id()
    bound, issued, info = await _issue_one(deps, task, ref, cid)
    entry = issuance.entry_for(deps, task, ref, bound, issued, info, task.entry(ref.name))
    entries = task_status.replace_entry(task.entries, entry)
    fact = report.issued(
        ref.name, task.secret_name(ref), bound.spec.backend_kind, issued.lease_id, cid
    )
    await report.reporter(deps).tell(task, fact)
    status: dict[str, Any] = {**starting, **task_status.with_entries(entries)}
    if activate:
        status.update(
            task_status.active({**task.status, **starting}, entries, task.generation, deps.clock())
        )
    return await patch(deps, task, status)


async def _issue_one(
    deps: Deps, task: TaskView, ref: CredentialRef, cid: str
) -> tuple[issuance.BoundCredential, Issued, secrets.SecretInfo]:
    """Resolve and issue (the Secret's name is checked by its create, no read first:
    ``issuance.issue``); a failure is audited and raised as TaskRetry or TaskFailed."""
    backend_kind = "unknown"
    account = task.spec.service_account_name
    try:
        with tracing.span(
            tracing.ISSUE, task, service_account=account, credential=ref.name, correlation_id=cid
        ) as span:
            bound = await issuance.resolve(deps, task, ref)
            backend_kind = bound.spec.backend_kind
            with metrics.ISSUE_DURATION.labels(backend_kind).time():
                issued, info = await issuance.issue(deps, task, bound, record_key=ref.name, cid=cid)
            tracing.note(span, backend=backend_kind, lease_id=issued.lease_id)
    except (TaskRetry, TaskFailed, BackendError) as exc:
        failure = _as_task_error(exc, ref)
        line = report.Audit("issue", "failure", ref.name, backend_kind, "", cid, failure.reason)
        await report.reporter(deps).tell(task, report.Fact(failure.message, audit=line))
        raise failure from None
    return bound, issued, info


def _as_task_error(exc: Exception, ref: CredentialRef) -> TaskRetry | TaskFailed:
    if isinstance(exc, TaskRetry | TaskFailed):
        return exc
    assert isinstance(exc, BackendError)
    message = f"{ref.name}: {exc}"
    decision = retry_decision(exc)
    if decision.permanent:
        return TaskFailed(exc.reason, message)
    return TaskRetry(exc.reason, message, decision.retry_after)


async def _waiting(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    reason: str,
    message: str,
    starting: Mapping[str, Any],
) -> None:
    ready = await report.reporter(deps).tell(task, report.waiting(reason, message))
    await patch(deps, task, {**starting, "conditions": ready})


async def complete(deps: Deps, body: Mapping[str, Any]) -> None:
    """``spec.completed`` became true (the task succeeded) or ``spec.failureReason`` was
    set (it failed, ``AgentReported``): decided from the task as read under its lock, so
    both set in one write end it once, Failed."""
    task = TaskView.from_body(body)
    async with (
        acting_for(task.namespace),
        deps.admission.hold(task.namespace),
        deps.locks.hold(task.uid),
    ):
        fresh = await current(deps, task)
        if fresh is None:
            return
        asked = requested_end(fresh)
        if not fresh.ended and asked is not None:
            await end(deps, fresh, *asked)
        elif fresh.ended and await cleanup_pending(deps, fresh):
            await cleanup(deps, fresh)


async def finalize(deps: Deps, body: Mapping[str, Any]) -> None:
    """The task is being deleted (its deletionTimestamp set: held by the finalizer of an
    operator from before issue 22, or by someone else's): end it Failed if it was not,
    revoke and clean up, then remove the old finalizer and Kopf's annotations
    (services/kopf_leftovers.py). What is left in memory goes with its DELETED event."""
    task = TaskView.from_body(body)
    deps.pods.unregister(task.namespace, task.uid)
    async with (
        acting_for(task.namespace),
        deps.admission.hold(task.namespace),
        deps.locks.hold(task.uid),
    ):
        fresh = await current(deps, task)
        if fresh is None:
            return  # a newer status of ours: its event follows
        await _finalized(deps, fresh)


async def _finalized(deps: Deps, task: TaskView) -> None:
    if not task.ended:
        reason, message = await _deletion_cause(deps, task)
        task = await patch(
            deps,
            task,
            task_status.ended(
                task.status, Phase.FAILED, reason, message, task.generation, deps.clock()
            ),
        )
        await report.event(
            deps.api, task, EventReason.ENDED, f"task Failed: {message}", warning=True
        )
    if task.uid not in deps.cleaned:  # cleaned up by this process already: nothing left
        await cleanup(deps, task)
    deps.scheduler.forget(task.uid)
    await kopf_leftovers.remove(deps, task)


async def finalize_again(deps: Deps, task: TaskView) -> None:
    """The scheduled retry of ``finalize`` (under the task's lock, read by the step)."""
    await _finalized(deps, task)


def gone(deps: Deps, body: Mapping[str, Any]) -> None:
    """The task is gone (its DELETED event): its cleanup is queued on the scheduler, due
    now (``deps.departed``: the task's view, no body), and the event's handler returns.
    A deletion of thousands at once then holds a view and a heap entry each while they
    wait their turn, not Kopf's worker, its event and the whole body each (20,000 at
    once grew the process by ~580 MiB that way). The step (maintenance.step) runs
    ``gone_again``: no read (a DELETED event is final for its uid), the same cleanup
    and its retries; the sweep revokes what a process that ends first leaves."""
    task = dataclasses.replace(TaskView.from_body(body), deleting=True)  # no status to write
    deps.pods.unregister(task.namespace, task.uid)
    deps.departed[task.uid] = task
    deps.scheduler.schedule(key_of(task), 0)


async def gone_again(deps: Deps, task: TaskView) -> None:
    """The cleanup of a task that is gone, under its lock (the scheduled step of a task
    in ``deps.departed``): every generated Secret deleted (not left to the garbage
    collector's timing), every session in its lease record revoked (the record lives in
    the operator's namespace, owned by nobody), TaskEnded posted for a task that had not
    ended, and everything this process kept for it forgotten. A cleanup that fails for
    now raises (the step retries it; the task stays in ``deps.departed``)."""
    if task.uid not in deps.cleaned:
        await cleanup(deps, task)
    if not task.ended:
        reason, message = await _deletion_cause(deps, task)
        log.info("%s/%s deleted before it ended (%s)", task.namespace, task.name, reason)
        await report.event(
            deps.api, task, EventReason.ENDED, f"task Failed: {message}", warning=True
        )
    forget(deps, task.uid)


def forget(deps: Deps, uid: str) -> None:
    """Everything this process keeps for a task, dropped (it is gone)."""
    deps.cleaned.discard(uid)
    deps.renew_requests.pop(uid, None)
    deps.locks.forget(uid)
    deps.scheduler.forget(uid)
    deps.active.discard(uid)
    deps.versions.pop(uid, None)
    deps.seen.discard(uid)
    deps.redo.discard(uid)
    deps.departed.pop(uid, None)
    approval.forget(deps, uid)
    metrics.ACTIVE_TASKS.set(len(deps.active))


async def _deletion_cause(deps: Deps, task: TaskView) -> tuple[str, str]:
    """Why an unfinished task is being deleted: its owner went (GC), or someone deleted it."""
    for owner in task.owners:
        kind, name = str(owner.get("kind")), str(owner.get("name"))
        body = await resources.get_owner(deps.api, task.namespace, kind, name)
        alive = body is not None and body["metadata"].get("uid") == owner.get("uid")
        if not alive or (body or {}).get("metadata", {}).get("deletionTimestamp"):
            return Reason.OWNER_DELETED, f"its owner {kind}/{name} was deleted"
    return Reason.DELETED, "the task was deleted before it finished"


async def end(
    deps: Deps,
    task: TaskView,
    phase: Phase,
    reason: str,
    message: str,
    starting: Mapping[str, Any] | None = None,
) -> None:
    """Delete everything the task holds and revoke it; the final phase (with ``starting``,
    a new task's first fields) is written with the revoked entries in one status patch
    (on its own if the cleanup fails before that). Done, the task leaves the schedule:
    no later step to find nothing left."""
    deps.pods.unregister(task.namespace, task.uid)
    approval.forget(deps, task.uid)
    now = deps.clock()
    final = {
        **(starting or {}),
        **task_status.ended(task.status, phase, reason, message, task.generation, now),
    }
    try:
        await cleanup(deps, task, final)
        deps.scheduler.forget(task.uid)
        deps.redo.discard(task.uid)  # nothing left to retry
    except TaskRetry:
        raise  # cleanup wrote its patch (final phase included) before giving up for now
    except Exception as exc:
        pending = f"cleanup failed ({type(exc).__name__}); retrying"
        await patch(deps, task, {**final, "conditions": _revocation(deps, task, final, pending)})
        raise
    finally:
        await report.event(
            deps.api,
            task,
            EventReason.ENDED,
            f"task {phase.value}: {message}",
            warning=phase != Phase.SUCCEEDED,
        )


async def cleanup_pending(deps: Deps, task: TaskView) -> bool:
    """Whether an ended task still holds sessions or generated Secrets (no read when this
    process finished its cleanup and issued nothing since: ``deps.cleaned``)."""
    if task.uid in deps.cleaned:
        return False
    if await lease_records.load(deps, task.uid):
        return True
    return any(e.state is EntryState.ISSUED for e in task.entries)


async def cleanup(deps: Deps, task: TaskView, final: Mapping[str, Any] | None = None) -> None:
    """Delete every generated Secret, revoke every session (and so every lease), and
    record the entries as revoked, with ``final`` (the ended phase) in the same patch.

    The Secrets go first: they are what pods read, and a lease whose session cannot be
    revoked yet is retried below, with the Secret already gone."""
    for ref in task.spec.credentials:
        await issuance.delete_secret(deps, task, ref)
    # Secrets it generated under names its spec no longer gives (an identity change).
    named = {task.secret_name(ref) for ref in task.spec.credentials}
    for name in sorted({e.secret_name for e in task.entries if e.secret_name} - named):
        deleted = await secrets.delete_secret(deps.api, task.namespace, name, owner_uid=task.uid)
        deps.written.pop((task.namespace, name), None)
        if deleted:
            deps.note_removed(task.namespace, name)
    records = await lease_records.load(deps, task.uid)
    remaining: dict[str, lease_records.LeaseRecord] = {}
    for key, record in records.items():
        current = task.entry(key)  # under the credential's own key: its status entry's lease
        lease_id = current.lease_id if current is not None else ""
        if not await revocation.revoke_reported(deps, task, record, lease_id):
            remaining[key] = record
    if records:  # no lease-record Secret (a static read, STS): nothing to rewrite or delete
        await lease_records.save(deps, task, remaining)
    message = f"{len(remaining)} session(s) could not be revoked yet; retrying"
    if not task.deleting:
        final = final or {}
        # Revoked rides on the same patch: True when nothing is left, else False (retrying).
        await patch(
            deps,
            task,
            {
                **final,
                **task_status.with_entries(task_status.revoked(task.entries)),
                "conditions": _revocation(deps, task, final, message if remaining else None),
            },
        )
    if remaining:
        await report.event(deps.api, task, EventReason.REVOKE_FAILED, message, warning=True)
        raise TaskRetry(Reason.REVOKE_FAILED, message)
    deps.cleaned.add(task.uid)


def _revocation(
    deps: Deps, task: TaskView, final: Mapping[str, Any], pending: str | None
) -> list[Any]:
    """The conditions of an ended task's patch (``final``'s, else its own) with Revoked."""
    old = {"conditions": final.get("conditions") or task.status.get("conditions")}
    lapsing = [e.name for e in task.entries if e.state is EntryState.ISSUED and not e.revocable]
    return task_status.revocation(old, pending, task.generation, deps.clock(), lapsing)
