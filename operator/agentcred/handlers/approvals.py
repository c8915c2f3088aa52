"""AgentTaskApproval watch: a new approval is bound to its task and wakes it (the task's
scheduled step runs the approval gate, services/approval.py).

An event handler, not a create handler: Kopf keeps no state on approvals (no
annotations, no finalizer), so the operator needs no write on them but their status.
"""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.handlers.filters import served
from agentcred.handlers.memo import OperatorMemo
from agentcred.models.api_names import GROUP, VERSION, Plural
from agentcred.services import approval

PLURAL = Plural.APPROVALS.value


@kopf.on.event(GROUP, VERSION, PLURAL, when=served)
async def seen(event: kopf.RawEvent, memo: OperatorMemo, **_: Any) -> None:
    body = event.get("object") or {}
    if event.get("type") == "DELETED" or body.get("status"):
        return  # gone, or read already (bound or judged): the task's gate takes it from here
    await approval.on_approval(memo.deps, body)
