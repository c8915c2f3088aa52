"""Turn an AgentCredential spec into its status: backend kind and a SpecValid condition."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from agentcred.models.credential import parse_credential_spec
from agentcred.models.errors import SpecError
from agentcred.models.status import CredentialResourceStatus, condition, merge_conditions


def evaluate(
    spec: Mapping[str, Any],
    generation: int | None,
    old: Mapping[str, Any],
    now: datetime.datetime | None = None,
) -> CredentialResourceStatus:
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        parsed = parse_credential_spec(spec)
    except SpecError as exc:
        cond = condition(
            "SpecValid",
            ok=False,
            reason="InvalidSpec",
            message=str(exc),
            generation=generation,
            now=now,
        )
        backend = ""
    else:
        cond = condition(
            "SpecValid",
            ok=True,
            reason="SpecValid",
            message="spec parsed",
            generation=generation,
            now=now,
        )
        backend = parsed.backend
    result = CredentialResourceStatus(
        backend=backend, conditions=merge_conditions(list(old.get("conditions", [])), cond)
    )
    if generation is not None:
        result["observedGeneration"] = generation
    return result
