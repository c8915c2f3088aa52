"""Keep an active task's credentials fresh: renew, re-issue, refresh, retire, expire.

Driven by the operator's one scheduler (services/scheduler.py): ``step`` runs when the
earliest moment recorded in the task's status (renewAt, retireAt, expiresAt, the
deadline) comes, acts, and returns when to look again. Every schedule lives in status,
so a restarted operator picks up exactly where the previous one stopped
(``initial_delay`` reads it from the listed body); nothing is polled.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

from opentelemetry.trace import Span

from agentcred import metrics, tracing
from agentcred.backends.base import (
    BackendError,
    Issued,
    Lease,
    Renewed,
)
from agentcred.kube import resources
from agentcred.kube.request_slots import acting_for
from agentcred.kube.secrets import SecretInfo
from agentcred.models import ceiling, identity
from agentcred.models.api_names import EventReason, Reason
from agentcred.models.errors import OperatorError, SpecError, retry_decision
from agentcred.models.resolved import parse_resolved
from agentcred.models.status import Condition, CredentialEntry, EntryState, Phase, timestamp
from agentcred.models.task import CredentialRef
from agentcred.services import (
    approval,
    issuance,
    lease_records,
    lifecycle,
    report,
    revocation,
    task_status,
)
from agentcred.services.deps import Deps
from agentcred.services.due import IDLE, next_due
from agentcred.services.errors import TaskFailed, TaskRetry
from agentcred.services.scheduler import TaskKey
from agentcred.services.task_view import TaskView
from agentcred.services.timing import backoff, capped_ttl, renew_at

log = logging.getLogger("agentcred.tasks")
NO_OVERLAP = datetime.timedelta(0)
# A fresh credential that must not be handed out (models/ceiling.py) ends the task.
CEILING_REASONS = (ceiling.TTL_EXCEEDED, ceiling.UNLEASED)


async def step(deps: Deps, key: TaskKey, attempt: int) -> float | None:
    """One scheduled round for a task: under its lock, read it once, act if due; seconds
    until the next round (negative: a retry backoff), None: nothing more to do."""
    async with acting_for(key.namespace), deps.locks.hold(key.uid):
        departed = deps.departed.get(key.uid)  # its DELETED event came: final, no read
        if departed is not None:
            return await _retried(deps, departed, attempt)
        body = await resources.get_task(deps.api, key.namespace, key.name)
        if body is None or body["metadata"]["uid"] != key.uid:
            deps.redo.discard(key.uid)  # gone: its DELETED event does the rest
            return None
        try:
            task = TaskView.from_body(body)
        except SpecError:
            return None
        if task.deleting:
            # Finalized by the event of its deletion; again here only when that failed.
            return await _retried(deps, task, attempt) if task.uid in deps.redo else None
        return await _step(deps, task, attempt)


async def _retried(deps: Deps, task: TaskView, attempt: int) -> float | None:
    """The retry of a deleted (or being deleted) task's cleanup (under its lock)."""
    try:
        if task.uid in deps.departed:
            await lifecycle.gone_again(deps, task)
        else:
            await lifecycle.finalize_again(deps, task)
            deps.redo.discard(task.uid)
    except Exception as exc:
        return retry_delay(deps, task, exc, attempt)
    return None


def retry_delay(deps: Deps, task: TaskView, exc: Exception, attempt: int) -> float | None:
    """A step that failed: minus the seconds to its retry (``retry_after``, else our
    backoff), or None for a permanent error (reported; nothing will fix it but a change,
    whose event is decided afresh). An error the core does not know is logged and
    retried as a temporary one: none is lost, none stops the operator."""
    decision = retry_decision(exc)
    if decision is not None and decision.permanent:
        metrics.count_error("task", exc)
        log.error("%s/%s: %s (permanent: not retried)", task.namespace, task.name, exc)
        deps.redo.discard(task.uid)
        return None
    if decision is None:
        metrics.count_error("task", exc)
        log.error(
            "%s/%s: unexpected %s; retrying",
            task.namespace,
            task.name,
            type(exc).__name__,
            exc_info=exc,
        )
    retry_after = decision.retry_after if decision is not None else None
    return -(retry_after or backoff(attempt, deps.rng))


async def _step(deps: Deps, task: TaskView, attempt: int) -> float | None:
    """One round (under the task's lock); returns seconds to sleep (negative: a retry
    backoff), None: done. Having acted, the next delay comes from the status just
    written, not from another read."""
    try:
        if task.ended:
            if await lifecycle.cleanup_pending(deps, task):
                await lifecycle.cleanup(deps, task)  # TaskRetry while something is left
            deps.redo.discard(task.uid)
            return None
        if task.uid in deps.redo:  # an event's action failed: the full path, as a start
            if await lifecycle.end_if_voided(deps, task):
                deps.redo.discard(task.uid)
                return None
            redone = await lifecycle.resume_issuing(deps, task, attempt)
            deps.redo.discard(task.uid)
            return until_due(deps, redone)
        if approval.awaiting(task):  # woken by an approval, or its deadline came
            waited = await lifecycle.resume_issuing(deps, task, attempt)
            if waited is not None and approval.awaiting(waited):
                return min(IDLE, approval.until_deadline(deps, waited))
            return until_due(deps, waited)
        if task.phase == Phase.PENDING and task.entries:
            # Was active, lost a credential (expired while the backend was down): re-issue.
            return until_due(deps, await lifecycle.resume_issuing(deps, task, attempt))
        if task.phase != Phase.ACTIVE:  # not started, or its first issuance to retry
            return until_due(deps, await lifecycle.resume_issuing(deps, task, attempt))
        now = deps.clock()
        due = next_due(task)
        if due is None or due > now:
            return min(IDLE, (due - now).total_seconds()) if due else IDLE
        return until_due(deps, await act(deps, task))
    except TaskRetry as retry:
        return -(retry.retry_after or backoff(attempt, deps.rng))
    except OperatorError as exc:  # a Kubernetes or backend error outside an issuance
        return retry_delay(deps, task, exc, attempt)


def until_due(deps: Deps, task: TaskView | None) -> float | None:
    """Seconds until the next round of ``task`` as last written (None: it ended here, its
    cleanup done; 0: something is due already, or it is Pending again)."""
    if task is None or task.ended:
        return None
    if task.phase != Phase.ACTIVE:
        return 0.0
    due = next_due(task)
    if due is None:
        return IDLE
    return max(0.0, min(IDLE, (due - deps.clock()).total_seconds()))


async def act(deps: Deps, task: TaskView) -> TaskView | None:
    """Do what is due for an active task (under its lock); the task as last written, or
    None when it ended here."""
    now = deps.clock()
    if task.deadline is not None and task.deadline <= now:
        await lifecycle.end(
            deps, task, Phase.EXPIRED, Reason.DEADLINE_EXCEEDED, "activeDeadlineSeconds passed"
        )
        return None
    held = await lifecycle.hold_identity(deps, task)  # before any backend call
    if held is None:
        return None
    task = held
    try:
        for entry in task.entries:
            ref = task.ref(entry.name)
            if ref is None or entry.state is not EntryState.ISSUED:
                continue
            task = await _act_on(deps, task, ref, entry, now)
            if task.ended:
                return None
    except TaskFailed as failure:  # a lease record logged in as another account
        if failure.reason != identity.IDENTITY_CHANGED:
            raise
        await lifecycle.end_for_identity(deps, task, failure.message)
        return None
    return task


async def _act_on(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    entry: CredentialEntry,
    now: datetime.datetime,
) -> TaskView:
    if entry.retire_at is not None and entry.retire_at <= now:
        task = await retire_previous(deps, task, ref)
        entry = task.entry(ref.name) or entry
    if entry.renew_at is not None and entry.renew_at <= now:
        task = await refresh_one(deps, task, ref, entry)
        entry = task.entry(ref.name) or entry
    expires = entry.expires_at
    if expires is not None and expires <= deps.clock() and entry.state is EntryState.ISSUED:
        task = await expire(deps, task, ref, entry)
    return task


async def refresh_one(
    deps: Deps, task: TaskView, ref: CredentialRef, entry: CredentialEntry
) -> TaskView:
    """Decide: renew in place where the backend can, otherwise issue a fresh credential
    (a static one is re-read); postpone when the backend cannot be reached now."""
    expires = entry.expires_at
    if task.deadline is not None and expires is not None and expires >= task.deadline:
        # The credential already lasts until the task's hard stop: nothing to extend.
        return await _save_entry(deps, task, dataclasses.replace(entry, renew_at=task.deadline))
    cid = task.correlation_id()
    try:
        bound = await issuance.resolve(deps, task, ref)
    except (TaskRetry, TaskFailed) as problem:
        return await _postpone(deps, task, ref, entry, problem.message)
    caps = bound.caps
    try:
        if caps.static:
            return await reissue(
                deps, task, ref, bound, overlap=NO_OVERLAP, reason=EventReason.REFRESHED
            )
        renewed = None
        if caps.renewable:
            asked_at = deps.clock()
            renewed = await renew_in_place(deps, task, ref, entry, bound, cid)
            check_renewal(bound, renewed, asked_at)
        if renewed is None or renewed.capped:
            overlap = deps.settings.reissue_overlap
            why = EventReason.REISSUED
            return await reissue(deps, task, ref, bound, overlap=overlap, reason=why)
    except BackendError as exc:  # BackendUnavailable included
        return await _postpone(deps, task, ref, entry, f"{ref.name}: {exc}")
    except TaskFailed as failure:
        if failure.reason not in CEILING_REASONS:
            raise
        return await fail_over_ceiling(deps, task, failure)
    return await _record_renewal(deps, task, ref, entry, bound, renewed, cid)


def check_renewal(
    bound: issuance.BoundCredential, renewed: Renewed | None, asked_at: datetime.datetime
) -> None:
    """TaskFailed ``TTLExceeded`` when a renewal granted more than the backend's maxTTL
    (plus 5 minutes): the increment asked is the credential's ttl, already capped by
    maxTTL and the deadline, but an engine may grant its own TTL instead."""
    if renewed is None:
        return
    found = ceiling.breach(
        bound.spec.max_ttl,
        asked_at,
        renewed.validity,
        revocable=bound.caps.revocable,
    )
    if found is not None:
        raise TaskFailed(found.reason, f"{bound.ref.name}: {found.message}")


async def fail_over_ceiling(deps: Deps, task: TaskView, failure: TaskFailed) -> TaskView:
    """A credential that must not be handed out (models/ceiling.py): the task ends Failed,
    everything it holds revoked (the over-long one included) and its Secrets deleted."""
    await report.event(deps.api, task, EventReason.ISSUE_FAILED, failure.message, warning=True)
    await lifecycle.end(deps, task, Phase.FAILED, failure.reason, failure.message)
    # Ended (its cleanup done, or TaskRetry raised): no read needed to say so.
    return dataclasses.replace(task, status={**task.status, "phase": Phase.FAILED.value})


async def renew_in_place(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    entry: CredentialEntry,
    bound: issuance.BoundCredential,
    cid: str,
) -> Renewed | None:
    """Renew the lease with the connection it was issued under (never a later-edited
    backend's); None when it cannot be renewed (no lease record, or a permanent error:
    denied, gone, invalid); a temporary error is raised (the caller postpones)."""
    records = await lease_records.load(deps, task.uid)
    issuance.check_identity(task, records)
    record = records.get(ref.name)
    if record is None:
        return None
    ttl = capped_ttl(bound.spec.ttl, deps.clock(), task.deadline)
    try:
        issued_under = parse_resolved(record.spec)
        async with deps.limits.slot(task.namespace, issued_under.target):
            with tracing.span(
                tracing.RENEW,
                task,
                service_account=record.service_account or task.spec.service_account_name,
                credential=ref.name,
                backend=record.backend,
                lease_id=entry.lease_id,
                correlation_id=cid,
            ):
                return await bound.backend.renew(
                    Lease(issued_under, entry.lease_id, record.session, cid), ttl
                )
    except (BackendError, SpecError) as exc:
        if retry_decision(exc).permanent:  # denied, gone, unusable: re-issue instead
            return None
        raise  # for now: the caller postpones


async def _record_renewal(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    entry: CredentialEntry,
    bound: issuance.BoundCredential,
    renewed: Renewed,
    cid: str,
) -> TaskView:
    """A lease renewed in place: its new expiry in the Secret's annotation and in status."""
    now = deps.clock()
    updated = dataclasses.replace(
        entry,
        expires_at=renewed.expires_at,
        renew_at=renew_at(now, renewed.expires_at, bound.spec.renewal_percent, deps.rng),
        renewals=entry.renewals + 1,
    )
    info = await issuance.annotate_expiry(deps, task, ref, renewed.expires_at)
    if info is not None:
        updated = dataclasses.replace(updated, secret_resource_version=info.resource_version)
    until = timestamp(renewed.expires_at)
    fact = report.renewed(ref.name, bound.spec.backend_kind, entry.lease_id, cid, until)
    ready = await report.reporter(deps).tell(task, fact)
    return await _save_entry(deps, task, updated, ready=ready)


async def reissue(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    bound: issuance.BoundCredential,
    *,
    overlap: datetime.timedelta,
    reason: str,
) -> TaskView:
    """Issue a fresh credential, switch the Secret to it, retire the old one after ``overlap``
    (at once when it is 0: revoked before the one status patch, which then needs no
    ``retireAt``; one that cannot be revoked yet is retired at its ``retireAt``, now)."""
    cid = task.correlation_id()
    with tracing.span(
        tracing.REISSUE,
        task,
        service_account=task.spec.service_account_name,
        credential=ref.name,
        backend=bound.spec.backend_kind,
        correlation_id=cid,
    ) as span:
        return await _reissue(
            deps, task, ref, bound, overlap=overlap, reason=reason, cid=cid, span=span
        )


async def _reissue(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    bound: issuance.BoundCredential,
    *,
    overlap: datetime.timedelta,
    reason: str,
    cid: str,
    span: Span | None,
) -> TaskView:
    next_key = ref.name + lease_records.NEXT
    records: dict[str, lease_records.LeaseRecord] = {}  # as the issue left them
    issued, info = await issuance.issue(
        deps, task, bound, record_key=next_key, cid=cid, records=records
    )
    tracing.note(span, lease_id=issued.lease_id)
    old = None
    if not issuance.keeps_no_record(bound):
        old = await _rotate_records(deps, task, ref, records)
    elif (previous := task.entry(ref.name)) is not None and previous.revocable:
        await _give_up_records(deps, task, ref)  # a lease until now: edited to a static read
    retire_at = deps.clock() + overlap if old is not None else None
    if (
        old is not None
        and overlap <= NO_OVERLAP
        and await _revoke_previous(deps, task, ref, records)
    ):
        retire_at = None  # nothing left to retire
    entry = _reissued_entry(deps, task, ref, bound, issued, info, retire_at)
    fact = report.replaced(
        ref.name,
        task.secret_name(ref),
        bound.spec.backend_kind,
        issued.lease_id,
        cid,
        static=bound.caps.static,
        why=reason,
    )
    ready = await report.reporter(deps).tell(task, fact)
    return await _save_entry(deps, task, entry, ready=ready)


def _reissued_entry(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    bound: issuance.BoundCredential,
    issued: Issued,
    info: SecretInfo,
    retire_at: datetime.datetime | None,
) -> CredentialEntry:
    """The entry of a fresh credential, the old one retired at ``retire_at``. A static
    refresh stays the same credential: its re-issues kept, one more renewal."""
    previous = task.entry(ref.name)
    entry = issuance.entry_for(deps, task, ref, bound, issued, info, previous)
    if previous is not None and bound.caps.static:
        entry = dataclasses.replace(
            entry, reissues=previous.reissues, renewals=previous.renewals + 1
        )
    return dataclasses.replace(entry, retire_at=retire_at)


async def _rotate_records(
    deps: Deps, task: TaskView, ref: CredentialRef, records: dict[str, lease_records.LeaseRecord]
) -> lease_records.LeaseRecord | None:
    """After a re-issue: the new session becomes current, the old one is kept as previous
    (retired after the overlap), an older previous is revoked now. Returns the old one.
    ``records``: as the issue wrote them (read again only if it left none); rotated in
    place."""
    next_key = ref.name + lease_records.NEXT
    if not records:
        records.update(await lease_records.load(deps, task.uid))
    old, new = records.pop(ref.name, None), records.pop(next_key, None)
    stale = records.pop(ref.name + lease_records.PREVIOUS, None)
    if stale is not None:
        await revocation.revoke_reported(deps, task, stale)
    if old is not None:
        records[ref.name + lease_records.PREVIOUS] = old
    if new is not None:
        records[ref.name] = new
    await lease_records.save(deps, task, records)
    return old


async def _give_up_records(deps: Deps, task: TaskView, ref: CredentialRef) -> None:
    """A credential edited from a lease to a static read keeps no session: the sessions of
    its earlier leases are revoked now, not when the task ends, and their records dropped
    (one that cannot be revoked yet stays for the task's end or the sweep)."""
    records = await lease_records.load(deps, task.uid)
    keys = [k for k in (ref.name, ref.name + lease_records.PREVIOUS) if k in records]
    gone = [k for k in keys if await revocation.revoke_reported(deps, task, records[k])]
    if gone:
        await lease_records.save(deps, task, {k: v for k, v in records.items() if k not in gone})


async def retire_previous(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    records: dict[str, lease_records.LeaseRecord] | None = None,
) -> TaskView:
    """Revoke the credential kept during a re-issue overlap (``records``: as just written
    by the re-issue; read when not given)."""
    if records is None:
        records = await lease_records.load(deps, task.uid)
    if not await _revoke_previous(deps, task, ref, records):
        raise TaskRetry(Reason.REVOKE_FAILED, f"{ref.name}: previous credential not revoked yet")
    entry = task.entry(ref.name)
    if entry is None:
        return task
    return await _save_entry(deps, task, dataclasses.replace(entry, retire_at=None))


async def _revoke_previous(
    deps: Deps, task: TaskView, ref: CredentialRef, records: dict[str, lease_records.LeaseRecord]
) -> bool:
    """Revoke the kept previous session and drop its record (``records`` as just read or
    written: no second read); False when it cannot be revoked yet."""
    old = records.get(ref.name + lease_records.PREVIOUS)
    if old is None:
        return True
    if not await revocation.revoke_reported(deps, task, old):
        return False
    records.pop(ref.name + lease_records.PREVIOUS)
    await lease_records.save(deps, task, records)
    return True


async def expire(
    deps: Deps, task: TaskView, ref: CredentialRef, entry: CredentialEntry
) -> TaskView:
    """A credential ran out before it could be renewed: no stale Secret stays behind."""
    await issuance.delete_secret(deps, task, ref)
    updated = dataclasses.replace(entry, state=EntryState.EXPIRED)
    ready = await report.reporter(deps).tell(task, report.expired(ref.name))
    entries = task_status.replace_entry(task.entries, updated)
    status = {**task_status.with_entries(entries), "phase": Phase.PENDING.value}
    return await lifecycle.patch(deps, task, {**status, "conditions": ready})


async def _postpone(
    deps: Deps, task: TaskView, ref: CredentialRef, entry: CredentialEntry, message: str
) -> TaskView:
    """Renewal failed for now: retry with backoff, but never past the credential's expiry."""
    now = deps.clock()
    retry_at = now + datetime.timedelta(seconds=backoff(3, deps.rng, base=1, cap=30))
    if entry.expires_at is not None:
        retry_at = min(retry_at, max(now, entry.expires_at))
    updated = dataclasses.replace(entry, renew_at=retry_at)
    fact = report.renewal_postponed(ref.name, entry.backend, entry.lease_id, message)
    ready = await report.reporter(deps).tell(task, fact)
    return await _save_entry(deps, task, updated, ready=ready)


async def _save_entry(
    deps: Deps, task: TaskView, entry: CredentialEntry, *, ready: list[Condition] | None = None
) -> TaskView:
    """The credential's entry, with the Ready condition when it changes, in one patch."""
    entries = task_status.replace_entry(task.entries, entry)
    status = task_status.with_entries(entries)
    if ready is not None:
        status["conditions"] = ready
    return await lifecycle.patch(deps, task, status)
