"""AgentTask handlers: record a new task as Pending (issuance arrives with the Vault issue)."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.services import task_status

GROUP, VERSION, PLURAL = "agentcred.io", "v1alpha1", "agenttasks"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
def admit(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    patch.status.update(task_status.admitted(dict(spec), dict(status), meta.get("generation")))
