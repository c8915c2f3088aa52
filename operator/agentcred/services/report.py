"""Tell people what happened to a task, once per fact: the Kubernetes Event (stable
reasons), the audit line and the task's Ready condition, from one call.

cert-manager's certificate-request ``Reporter`` is the model: a fact such as "renewal
failed for now" is written the same three ways wherever it happens, so its Event reason,
condition reason and audit outcome are chosen here, once, not at each call site. The
Reporter posts the Event and writes the audit line itself; the condition it returns for
the caller's one status patch (read once, decide, write once): it never writes status,
so it adds no request of its own.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentcred import audit
from agentcred.kube import events
from agentcred.models.api_names import EventReason, Reason
from agentcred.models.status import Condition
from agentcred.services import task_status
from agentcred.services.deps import Deps
from agentcred.services.task_view import TaskView

log = logging.getLogger("agentcred.tasks")


@dataclass(frozen=True)
class Audit:
    """The audit line of a fact (audit.py adds who: namespace, task, ServiceAccount)."""

    action: str  # issue, renew, reissue, refresh, revoke, approve
    outcome: str  # success, failure
    credential: str
    backend: str
    lease_id: str = ""
    correlation_id: str = ""
    reason: str = ""
    approver: str = ""  # an approval's author (action approve)


@dataclass(frozen=True)
class Fact:
    """One thing that happened to a task, and the ways it is told: an Event (when
    ``event``), an audit line (when ``audit``) and the Ready condition: set False with
    ``ready`` as its reason, or back to True when ``recovered`` (a success after a
    failure had set it False)."""

    message: str
    event: EventReason | None = None
    warning: bool = False
    ready: str | None = None  # a Reason, or the reason an error carries
    recovered: bool = False
    audit: Audit | None = None


class Reporter:
    """Tells facts about tasks (see ``Fact``); one per operator's API client and clock."""

    def __init__(self, api: Any, clock: Callable[[], datetime.datetime]) -> None:
        self.api, self.clock = api, clock

    async def tell(self, task: TaskView, fact: Fact) -> list[Condition] | None:
        """Write the audit line, post the Event; the Ready conditions to put in the
        caller's status patch, None when the fact leaves Ready as it is."""
        if fact.audit is not None:
            trail(task, fact.audit)
        if fact.event is not None:
            await event(self.api, task, fact.event, fact.message, warning=fact.warning)
        now = self.clock()
        if fact.ready is not None:
            return task_status.ready(
                task.status, False, fact.ready, fact.message, task.generation, now
            )
        if fact.recovered:
            return task_status.recovered(task.status, task.generation, now)
        return None


def reporter(deps: Deps) -> Reporter:
    return Reporter(deps.api, deps.clock)


# The facts told in more than one place, or whose three reasons must agree.


def issued(credential: str, secret: str, backend: str, lease_id: str, cid: str) -> Fact:
    return Fact(
        f"{credential}: issued into Secret {secret}",
        event=EventReason.ISSUED,
        audit=Audit("issue", "success", credential, backend, lease_id, cid),
    )


def renewed(credential: str, backend: str, lease_id: str, cid: str, until: str) -> Fact:
    return Fact(
        f"{credential}: lease renewed until {until}",
        event=EventReason.RENEWED,
        recovered=True,
        audit=Audit("renew", "success", credential, backend, lease_id, cid),
    )


def renewal_postponed(credential: str, backend: str, lease_id: str, message: str) -> Fact:
    return Fact(
        message,
        event=EventReason.RENEW_FAILED,
        warning=True,
        ready=Reason.RENEW_FAILED,
        audit=Audit("renew", "failure", credential, backend, lease_id, reason="postponed"),
    )


def replaced(
    credential: str, secret: str, backend: str, lease_id: str, cid: str, *, static: bool, why: str
) -> Fact:
    """A fresh credential in the Secret: re-issued (an Event), refreshed (a static read:
    none) or restored after an edit (drift posts its own Event, saying what happened)."""
    return Fact(
        f"{credential}: fresh credential issued into {secret}",
        event=EventReason.REISSUED if why == EventReason.REISSUED else None,
        recovered=True,
        audit=Audit(
            "refresh" if static else "reissue", "success", credential, backend, lease_id, cid
        ),
    )


def expired(credential: str) -> Fact:
    return Fact(
        f"{credential}: expired before it could be renewed; Secret deleted, re-issuing",
        event=EventReason.EXPIRED,
        warning=True,
        ready=Reason.CREDENTIAL_EXPIRED,
    )


def waiting(reason: str, message: str) -> Fact:
    """Issuance failed for now: Ready False with the failure's reason; the Event says
    IssueFailed, except a name conflict, the user's to fix, under its own reason."""
    conflict = reason == Reason.SECRET_CONFLICT.value
    return Fact(
        message,
        event=EventReason.SECRET_CONFLICT if conflict else EventReason.ISSUE_FAILED,
        warning=True,
        ready=reason,
    )


async def event(
    api: Any, task: TaskView, reason: EventReason, message: str, *, warning: bool = False
) -> None:
    await events.post_event(
        api,
        task.object_ref,
        type_="Warning" if warning else "Normal",
        reason=reason.value,
        message=message,
    )
    (log.warning if warning else log.info)(
        "%s: %s", reason.value, message, extra={"namespace": task.namespace, "task": task.name}
    )


def trail(task: TaskView, line: Audit) -> None:
    audit.emit(
        audit.AuditRecord(
            action=line.action,
            outcome=line.outcome,
            namespace=task.namespace,
            task=task.name,
            credential=line.credential,
            backend=line.backend,
            service_account=task.spec.service_account_name,
            lease_id=line.lease_id,
            correlation_id=line.correlation_id,
            reason=line.reason,
            approver=line.approver,
        )
    )
