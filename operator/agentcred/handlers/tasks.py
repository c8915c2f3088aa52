"""AgentTask: one event handler, so Kopf stores nothing on a task (no finalizer, no
diff-base or progress annotations: kopf/_core/reactor/processing.py runs ``on.event``
handlers as "watching causes", without progress, and only changing or spawning
handlers make it add a finalizer). What an event means is decided from the task's state
and its retries run from the operator's scheduler: services/task_events.py."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.handlers.filters import served
from agentcred.handlers.memo import OperatorMemo
from agentcred.models.api_names import GROUP, VERSION, Plural
from agentcred.services import task_events

PLURAL = Plural.TASKS.value


@kopf.on.event(GROUP, VERSION, PLURAL, when=served)
async def changed(event: kopf.RawEvent, memo: OperatorMemo, **_: Any) -> None:
    """Every event of a task (type None: listed at start). Returns None: a result would
    be stored in the task's status by Kopf."""
    await task_events.on_event(memo.deps, event.get("type"), event.get("object") or {})
