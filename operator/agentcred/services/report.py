"""Tell people what happened to a task: Kubernetes Events (stable reasons) and audit lines."""

from __future__ import annotations

import logging
from typing import Any

from agentcred import audit
from agentcred.kube import events
from agentcred.services.task_view import TaskView

log = logging.getLogger("agentcred.tasks")

# Event reasons are part of the API: alerting rules match on them.
ISSUED = "CredentialIssued"
RENEWED = "LeaseRenewed"
REISSUED = "CredentialReissued"
REVOKED = "CredentialRevoked"
RESTORED = "SecretRestored"
REFRESHED = "CredentialRefreshed"
ISSUE_FAILED = "IssueFailed"
RENEW_FAILED = "RenewFailed"
REVOKE_FAILED = "RevokeFailed"
EXPIRED = "CredentialExpired"
ENDED = "TaskEnded"


async def event(
    api: Any, task: TaskView, reason: str, message: str, *, warning: bool = False
) -> None:
    await events.post_event(
        api,
        task.object_ref,
        type_="Warning" if warning else "Normal",
        reason=reason,
        message=message,
    )
    (log.warning if warning else log.info)(
        "%s: %s", reason, message, extra={"namespace": task.namespace, "task": task.name}
    )


def succeeded(
    task: TaskView, action: str, *, credential: str, backend: str, lease_id: str, cid: str
) -> None:
    """The audit line of a credential issued, renewed, re-issued or refreshed."""
    trail(
        task,
        action,
        "success",
        credential=credential,
        backend=backend,
        lease_id=lease_id,
        correlation_id=cid,
    )


def trail(
    task: TaskView,
    action: str,
    outcome: str,
    *,
    credential: str,
    backend: str,
    lease_id: str = "",
    correlation_id: str = "",
    reason: str = "",
) -> None:
    audit.emit(
        audit.AuditRecord(
            action=action,
            outcome=outcome,
            namespace=task.namespace,
            task=task.name,
            credential=credential,
            backend=backend,
            service_account=task.spec.service_account_name,
            lease_id=lease_id,
            correlation_id=correlation_id,
            reason=reason,
        )
    )
