"""Status of a task that has just been seen: Pending, with its start time."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from agentcred.models.errors import SpecError
from agentcred.models.status import Phase, TaskStatus, condition, merge_conditions, timestamp
from agentcred.models.task import parse_task_spec


def admitted(
    spec: Mapping[str, Any],
    old: Mapping[str, Any],
    generation: int | None,
    now: datetime.datetime | None = None,
) -> TaskStatus:
    now = now or datetime.datetime.now(datetime.UTC)
    if old.get("phase"):
        return TaskStatus()
    result = TaskStatus(phase=Phase.PENDING.value, startTime=timestamp(now))
    try:
        parse_task_spec(spec)
    except SpecError as exc:
        cond = condition(
            "Ready",
            ok=False,
            reason="InvalidSpec",
            message=str(exc),
            generation=generation,
            now=now,
        )
    else:
        cond = condition(
            "Ready",
            ok=False,
            reason="Pending",
            message="waiting for issuance",
            generation=generation,
            now=now,
        )
    result["conditions"] = merge_conditions(list(old.get("conditions", [])), cond)
    return result
