"""AgentTask spec: a unit of agent work and the credentials it needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentcred.models import names
from agentcred.models.errors import SpecError
from agentcred.models.parse import build

DEFAULT_SERVICE_ACCOUNT = "default"
MAX_DEADLINE_SECONDS = 366 * 24 * 3600  # a year (and a day): beyond that, a deadline is a typo


@dataclass(frozen=True)
class CredentialRef:
    name: str
    secret_name: str | None = None


@dataclass(frozen=True)
class LabelSelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str] | None = None
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()


@dataclass(frozen=True)
class AgentTaskSpec:
    credentials: tuple[CredentialRef, ...]
    service_account_name: str = DEFAULT_SERVICE_ACCOUNT
    pod_selector: LabelSelector | None = None
    active_deadline_seconds: int | None = None
    completed: bool = False
    failure_reason: str | None = None  # set by the agent: the task ends Failed, AgentReported


def secret_name_for(task_name: str, ref: CredentialRef) -> str:
    """The generated Secret's name: explicit, or ``<task>-<credential>`` (hash-shortened
    when that would exceed 253 characters, see models/names.py)."""
    return ref.secret_name or names.secret_name(task_name, ref.name)


def parse_task_spec(spec: Mapping[str, Any]) -> AgentTaskSpec:
    parsed = build(AgentTaskSpec, spec, "spec")
    if not parsed.credentials:
        raise SpecError("spec.credentials", "needs at least one credential")
    deadline = parsed.active_deadline_seconds
    if deadline is not None and not 0 < deadline <= MAX_DEADLINE_SECONDS:
        raise SpecError(
            "spec.activeDeadlineSeconds", f"must be between 1 and {MAX_DEADLINE_SECONDS}"
        )
    return parsed
