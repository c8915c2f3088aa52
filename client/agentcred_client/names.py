"""The operator's names on the wire that the client reads or writes.

The same strings as the operator's ``agentcred.models.api_names`` (the client does not
depend on the operator package; a unit test checks that the two agree).
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "agentcred.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
TASKS: Final = "agenttasks"
KIND: Final = "AgentTask"

CORRELATION_ID: Final = f"{GROUP}/correlation-id"
TRACEPARENT: Final = f"{GROUP}/traceparent"
TASK_LABEL: Final = f"{GROUP}/task"

READY: Final = "Ready"
REVOKED: Final = "Revoked"
AWAITING_APPROVAL: Final = "AwaitingApproval"  # a Ready reason: the clock does not run

ACTIVE: Final = "Active"
ENDED_PHASES: Final = frozenset({"Succeeded", "Failed", "Expired"})

MAX_FAILURE_REASON: Final = 1024  # spec.failureReason's maxLength in the CRD
