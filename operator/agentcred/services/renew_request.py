"""A person asks for a task's credentials to be renewed now (``kubectl agentcred renew``):
the annotation ``agentcred.io/renew-requested-at`` on the AgentTask, honoured once per
value.

Each Issued credential goes through the same decision as a scheduled renewal
(``maintenance.refresh_one``): a renewable lease is renewed in place, anything else is
issued afresh (a static secret re-read); a backend that cannot be reached postpones it as
usual. The value honoured is recorded in ``status.renewRequestedAt``, so a restarted
operator (whose watch lists the task with the annotation again) does not repeat it, and
kept in ``deps.renew_requests`` while the task lives, so that a status without the field
(a CRD older than the operator prunes it) cannot make every later event renew again.

Why an event handler and not Kopf's update handler: Kopf leaves annotations under its own
storage prefix (``agentcred.io``) out of the diff it compares, so it never sees this
annotation change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcred.models.api_names import Annotation, EventReason
from agentcred.models.status import EntryState, Phase
from agentcred.services import lifecycle, maintenance, report
from agentcred.services.deps import Deps
from agentcred.services.task_view import TaskView


def pending_value(task: TaskView) -> str | None:
    """The requested value not yet honoured (None: nothing asked, or already done)."""
    value = task.annotations.get(Annotation.RENEW_REQUESTED_AT)
    if not value or task.status.get("renewRequestedAt") == value:
        return None
    return str(value)


async def honour(deps: Deps, body: Mapping[str, Any]) -> bool:
    """Renew or re-read every credential of an active task now, once per annotation value;
    whether anything was done."""
    task = TaskView.from_body(body)
    value = pending_value(task)
    if value is None or deps.renew_requests.get(task.uid) == value:
        return False
    async with deps.admission.hold(task.namespace), deps.locks.hold(task.uid):
        fresh = await lifecycle.current(deps, task)  # the event's body: read once
        if fresh is None or fresh.deleting or fresh.phase != Phase.ACTIVE:
            return False
        if pending_value(fresh) != value:
            return False  # done already, or changed again meanwhile (that value's turn)
        deps.renew_requests[task.uid] = value
        held = await lifecycle.hold_identity(deps, fresh)
        if held is None:
            return False
        await report.event(
            deps.api,
            held,
            EventReason.RENEW_REQUESTED,
            f"renewal requested ({Annotation.RENEW_REQUESTED_AT}={value}): renewing or "
            "re-reading every credential now",
        )
        current: TaskView = held
        for entry in held.entries:
            ref = current.ref(entry.name)
            if ref is None or entry.state is not EntryState.ISSUED:
                continue
            latest = current.entry(ref.name) or entry
            current = await maintenance.refresh_one(deps, current, ref, latest)
            if current.ended:
                return True
        current = await lifecycle.patch(deps, current, {"renewRequestedAt": value})
    delay = maintenance.until_due(deps, current)
    if delay is not None:
        deps.scheduler.forget(task.uid)
        deps.scheduler.schedule(lifecycle.key_of(current), delay)
    return True
