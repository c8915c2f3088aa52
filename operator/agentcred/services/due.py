"""When is a task next due? Pure functions of its status and the time.

The scheduler (``scheduler.py``) runs a task's step at the moment given here; the
moments themselves (renewAt, refresh points, backoff) are computed by ``timing.py``.

Kept apart from the code that acts (services/maintenance.py) so that the schedule is
decided in one place and tested in-process with a fake clock.
"""

from __future__ import annotations

import datetime

from agentcred.models.status import EntryState, Phase
from agentcred.services.task_view import TaskView
from agentcred.services.timing import earliest

IDLE = 3600.0  # nothing scheduled: look again in an hour (or when woken)


def next_due(task: TaskView) -> datetime.datetime | None:
    moments: list[datetime.datetime | None] = [task.deadline]
    for entry in task.entries:
        if entry.state is EntryState.ISSUED:
            moments += [entry.renew_at, entry.retire_at, entry.expires_at]
    return earliest(moments)


def initial_delay(task: TaskView, now: datetime.datetime) -> float | None:
    """When a task listed at start needs its first step (None: not the scheduler's)."""
    if task.deleting:
        return None
    if task.ended:
        issued = any(e.state is EntryState.ISSUED for e in task.entries)
        return 0.0 if issued else None  # leftover sessions alone are the sweep's
    if task.phase != Phase.ACTIVE:
        return 0.0 if task.entries else None
    due = next_due(task)
    return max(0.0, (due - now).total_seconds()) if due is not None else IDLE
