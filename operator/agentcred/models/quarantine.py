"""CredentialQuarantine: which tasks an incident responder's quarantine reaches (pure).

A quarantine names targets (namespaces, a namespace selector, ServiceAccounts and
AgentCredentials written ``namespace/name``, CredentialBackend names, a task label
selector); a task matches when it matches any one of them. What a task is, for matching,
is its ``TaskSubject``: the facts the operator reads from the cluster once (its labels,
its namespace's labels, the CredentialBackends its credentials name) and hands in here.

A selector with nothing in it matches nothing: the CRD refuses one, and a kill switch
that a missing field turns into "every task in the cluster" would be worse than none.
The ``QuarantineIndex`` is the operator's view of the quarantines that exist (kept from
the watch), answering "is this task quarantined, and by which one?" without a request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentcred.models.api_names import Reason
from agentcred.models.errors import SpecError
from agentcred.models.parse import build
from agentcred.models.selectors import matches as selector_matches
from agentcred.models.task import LabelSelector

TARGETS = (
    "namespaces",
    "namespaceSelector",
    "serviceAccounts",
    "credentialBackends",
    "agentCredentials",
    "taskSelector",
)


@dataclass(frozen=True)
class CredentialQuarantineSpec:
    reason: str
    namespaces: tuple[str, ...] = ()
    namespace_selector: LabelSelector | None = None
    service_accounts: tuple[str, ...] = ()
    credential_backends: tuple[str, ...] = ()
    agent_credentials: tuple[str, ...] = ()
    task_selector: LabelSelector | None = None

    @property
    def needs_namespace_labels(self) -> bool:
        return _selects(self.namespace_selector)

    @property
    def needs_backends(self) -> bool:
        return bool(self.credential_backends)


@dataclass(frozen=True)
class Quarantine:
    name: str
    spec: CredentialQuarantineSpec

    @property
    def message(self) -> str:
        """What an ended or refused task's status and Event say."""
        return f"CredentialQuarantine {self.name}: {self.spec.reason}"


@dataclass(frozen=True)
class TaskSubject:
    """A task as matching sees it. ``namespace_labels`` None: not looked up (no
    quarantine asked for them); ``backends``: the CredentialBackend names its credentials
    use, as far as known."""

    namespace: str
    name: str
    service_account: str
    credentials: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] | None = None
    backends: tuple[str, ...] = ()


def parse_quarantine_spec(raw: Mapping[str, Any]) -> CredentialQuarantineSpec:
    """The spec, or ``SpecError`` (no reason, no target: the CRD's rules, checked again)."""
    spec = build(CredentialQuarantineSpec, raw, "spec")
    if not spec.reason.strip():
        raise SpecError("spec.reason", "is required")
    if not any(raw.get(t) for t in TARGETS):
        raise SpecError("spec", f"names no target (one of {', '.join(TARGETS)})")
    return spec


def matches(spec: CredentialQuarantineSpec, task: TaskSubject) -> bool:
    """Whether ``task`` matches any one of the quarantine's targets."""
    if task.namespace in spec.namespaces:
        return True
    if f"{task.namespace}/{task.service_account}" in spec.service_accounts:
        return True
    if any(f"{task.namespace}/{c}" in spec.agent_credentials for c in task.credentials):
        return True
    if any(b in spec.credential_backends for b in task.backends):
        return True
    if _selects(spec.task_selector) and selector_matches(_sel(spec.task_selector), task.labels):
        return True
    return (
        _selects(spec.namespace_selector)
        and task.namespace_labels is not None
        and selector_matches(_sel(spec.namespace_selector), task.namespace_labels)
    )


def ended_by(quarantine_name: str, reason: str, message: str) -> bool:
    """Whether a task's final ``reason``/``message`` say this quarantine ended it."""
    return reason == Reason.QUARANTINED and message.startswith(
        f"CredentialQuarantine {quarantine_name}:"
    )


def _selects(selector: LabelSelector | None) -> bool:
    return selector is not None and bool(selector.match_labels or selector.match_expressions)


def _sel(selector: LabelSelector | None) -> LabelSelector:
    assert selector is not None
    return selector


class QuarantineIndex:
    """The quarantines that exist, by name (the operator's copy, kept from the watch)."""

    def __init__(self, quarantines: Iterable[Quarantine] = ()) -> None:
        self._by_name = {q.name: q for q in quarantines}

    def put(self, quarantine: Quarantine) -> None:
        self._by_name[quarantine.name] = quarantine

    def remove(self, name: str) -> None:
        self._by_name.pop(name, None)

    def replace(self, quarantines: Iterable[Quarantine]) -> None:
        self._by_name = {q.name: q for q in quarantines}

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def needs_namespace_labels(self) -> bool:
        return any(q.spec.needs_namespace_labels for q in self._by_name.values())

    @property
    def needs_backends(self) -> bool:
        return any(q.spec.needs_backends for q in self._by_name.values())

    def first_match(self, task: TaskSubject) -> Quarantine | None:
        """The quarantine (first by name, so the answer is stable) that ``task`` matches."""
        for name in sorted(self._by_name):
            if matches(self._by_name[name].spec, task):
                return self._by_name[name]
        return None
