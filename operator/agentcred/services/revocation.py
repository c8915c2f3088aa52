"""Revoke one recorded session, with an audit line; shared by task cleanup, the re-issue
steps (an overlapped or stale session) and the sweep."""

from __future__ import annotations

import logging

from agentcred import audit, metrics, tracing
from agentcred.backends.base import BackendError, Lease
from agentcred.models.api_names import EventReason
from agentcred.models.errors import SpecError, retry_decision
from agentcred.models.resolved import parse_resolved
from agentcred.services import report
from agentcred.services.deps import Deps
from agentcred.services.lease_records import LeaseRecord
from agentcred.services.task_view import TaskView

log = logging.getLogger("agentcred.tasks")


async def revoke_record(
    deps: Deps,
    record: LeaseRecord,
    *,
    namespace: str,
    task: str,
    service_account: str,
    correlation_id: str | None = None,
    traced: tracing.TracedTask | None = None,
    lease_id: str = "",
) -> bool:
    """True when the session is gone: revoked now, already gone, expired, or unrevocable.

    A failure retrying can help (``retry_decision``: not permanent) leaves the session
    to a later attempt, unless it has expired meanwhile; a permanent one can never
    succeed, and the session's own TTL bounds it. ``correlation_id``: the task's
    (``TaskView.correlation_id``); a fresh one for an orphan whose task is gone.
    ``traced``: the live task, whose trace the revocation span continues; ``lease_id``:
    the lease the session parents when the caller knows it (a record of a session keeps
    none), for the span."""
    cid = correlation_id or audit.new_correlation_id()
    with tracing.span(
        tracing.REVOKE,
        traced,
        task=task,
        namespace=namespace,
        service_account=service_account,
        credential=record.credential,
        backend=record.backend,
        lease_id=record.lease_id or lease_id,
        correlation_id=cid,
    ):
        return await _revoke(deps, record, namespace, task, service_account, cid)


async def _revoke(
    deps: Deps, record: LeaseRecord, namespace: str, task: str, service_account: str, cid: str
) -> bool:

    def trail(outcome: str, reason: str = "") -> None:
        audit.emit(
            audit.AuditRecord(
                action="revoke",
                outcome=outcome,
                namespace=namespace,
                task=task,
                credential=record.credential,
                backend=record.backend,
                service_account=service_account,
                lease_id=record.lease_id,
                correlation_id=cid,
                reason=reason,
            )
        )

    try:
        spec = parse_resolved(record.spec)  # the connection it was issued under
        backend = deps.backends.for_kind(record.backend)
        async with deps.limits.slot(namespace, spec.target):
            with metrics.REVOKE_DURATION.labels(record.backend).time():
                await backend.revoke(Lease(spec, record.lease_id, record.session, cid))
    except (BackendError, SpecError) as exc:
        if retry_decision(exc).permanent:  # can never succeed; its own TTL bounds it
            name = metrics.error_name(exc)
            log.warning("revocation of %s impossible: %s", record.credential, name)
            trail("failure", name)
            return True
        expired = record.expired(deps.clock())
        reason = exc.reason if isinstance(exc, BackendError) else metrics.error_name(exc)
        trail("success" if expired else "failure", "expired" if expired else reason)
        return expired
    trail("success")
    return True


async def revoke_for_task(
    deps: Deps, task: TaskView, record: LeaseRecord, lease_id: str = ""
) -> bool:
    """``revoke_record`` for a session of ``task``; True when it is gone. The audit names
    the account the session was logged in as (the spec's, for records from before it was
    kept): after an identity change the two differ."""
    return await revoke_record(
        deps,
        record,
        namespace=task.namespace,
        task=task.name,
        service_account=record.service_account or task.spec.service_account_name,
        correlation_id=task.correlation_id(),
        traced=task,
        lease_id=lease_id,
    )


async def revoke_reported(
    deps: Deps, task: TaskView, record: LeaseRecord, lease_id: str = ""
) -> bool:
    """Revoke one session of a live task, with a CredentialRevoked Event when it is gone;
    True when it is gone."""
    gone = await revoke_for_task(deps, task, record, lease_id)
    if gone:
        await report.event(deps.api, task, EventReason.REVOKED, f"{record.credential}: revoked")
    return gone
