"""A person's approval before a credential is issued: who must approve, and what a task's
AgentTaskApprovals decide. Pure functions, no I/O (services/approval.py acts on them).

* A CredentialBackend's ``spec.approval`` asks for approval on every credential
  (``required: true``) or on those whose requested name matches ``requiredFor`` (the
  allow-list syntax and matching: ``{namespace}``, ``{serviceAccount}``, ``*`` within one
  segment; case-insensitively where the backend compares names so, or a case variant of
  an IAM role would skip approval and reach the same role).
* An approval counts only when it carries the approver the admission policy stamped
  (``agentcred.io/approved-by``), names one of the task's backends that asks for approval,
  was not written by the task's creator (``agentcred.io/created-by``, stamped the same
  way) nor by the task's own ServiceAccount, and is still bound to the task as the
  operator first read it (its uid and generation): an edit of the task voids it.
* A counted denial wins over any approval; every backend that asks must approve; past
  the deadline (the task's creation plus the shortest ``timeout``, 1 h by default) the
  task has timed out.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from agentcred.models.api_names import Annotation, ApprovalReason
from agentcred.models.backend import ApprovalPolicy
from agentcred.models.policy import allowed
from agentcred.models.resolved import ResolvedCredential

DEFAULT_TIMEOUT = timedelta(hours=1)


def wait(policy: ApprovalPolicy) -> timedelta:
    """How long a task waits for approval through a backend with ``policy``."""
    return policy.timeout if policy.timeout is not None else DEFAULT_TIMEOUT


def requested_name(resolved: ResolvedCredential) -> tuple[str, bool]:
    """The name the backend's allow-list matched, and whether the backend ignores case."""
    if resolved.vault is not None:
        kv, dynamic = resolved.vault.kv, resolved.vault.dynamic
        if kv is not None:
            return f"{kv.mount.strip('/')}/data/{kv.path.strip('/')}", False
        return (dynamic.path.strip("/") if dynamic is not None else ""), False
    if resolved.aws_secrets_manager is not None:
        return resolved.aws_secrets_manager.secret_id, False
    if resolved.aws_sts is not None:  # IAM role names ignore case
        return resolved.aws_sts.role_arn, True
    if resolved.gcp_secret_manager is not None:
        gcp = resolved.gcp_secret_manager
        return f"projects/{gcp.project}/secrets/{gcp.secret}", False
    if resolved.azure_key_vault is not None:  # Key Vault names ignore case
        return resolved.azure_key_vault.name, True
    return "", False


def needs_approval(
    policy: ApprovalPolicy | None,
    resolved: ResolvedCredential,
    *,
    namespace: str,
    service_account: str | None,
) -> bool:
    if policy is None:
        return False
    if policy.required:
        return True
    value, case_insensitive = requested_name(resolved)
    patterns = policy.required_for
    if case_insensitive:
        value, patterns = value.lower(), tuple(p.lower() for p in patterns)
    return allowed(patterns, value, namespace=namespace, service_account=service_account)


class Decision(StrEnum):
    APPROVED = "Approved"
    DENIED = "Denied"


class ApprovalState(StrEnum):
    """``status.state`` of an AgentTaskApproval, as the operator judged it."""

    BOUND = "Bound"  # read and bound to the task; not acted on yet
    APPLIED = "Applied"  # decided the task
    IGNORED = "Ignored"  # does not count (status.reason says why)
    VOIDED = "Voided"  # the task changed after the approval was read


@dataclass(frozen=True)
class Approval:
    """One AgentTaskApproval, as the operator reads it."""

    name: str
    task: str
    backend: str
    decision: Decision
    reason: str
    approver: str | None  # agentcred.io/approved-by, stamped at admission
    created: datetime.datetime
    bound_uid: str | None = None
    bound_generation: int | None = None
    state: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any], created: datetime.datetime) -> Approval:
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        status = body.get("status") or {}
        decision = spec.get("decision")
        generation = status.get("taskGeneration")
        return cls(
            name=str(meta.get("name") or ""),
            task=str((spec.get("taskRef") or {}).get("name") or ""),
            backend=str(spec.get("credentialBackend") or ""),
            # Anything but an explicit Approved is read as a denial (the CRD's enum has two).
            decision=Decision.APPROVED if decision == Decision.APPROVED else Decision.DENIED,
            reason=str(spec.get("reason") or ""),
            approver=(meta.get("annotations") or {}).get(Annotation.APPROVED_BY) or None,
            created=created,
            bound_uid=status.get("taskUID") or None,
            bound_generation=generation if isinstance(generation, int) else None,
            state=status.get("state") or None,
        )

    @property
    def bound(self) -> bool:
        return self.bound_uid is not None and self.bound_generation is not None


@dataclass(frozen=True)
class TaskFacts:
    """What judging an approval needs to know about its task."""

    uid: str
    generation: int
    creator: str | None  # agentcred.io/created-by, stamped at admission
    service_account_user: str  # system:serviceaccount:<namespace>:<name>
    backends: frozenset[str]  # every backend of the task's credentials
    required: frozenset[str]  # those that ask for approval for this task
    created: datetime.datetime
    timeout: timedelta = DEFAULT_TIMEOUT

    @property
    def deadline(self) -> datetime.datetime:
        return self.created + self.timeout


@dataclass(frozen=True)
class Verdict:
    state: ApprovalState
    reason: str
    message: str

    @property
    def counts(self) -> bool:
        return self.state in (ApprovalState.BOUND, ApprovalState.APPLIED)


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def judge(approval: Approval, task: TaskFacts) -> Verdict:
    """Does ``approval`` count for ``task``? (It must have been bound first.)"""
    if approval.bound_uid != task.uid:
        return Verdict(
            ApprovalState.VOIDED,
            ApprovalReason.TASK_REPLACED,
            f"bound to another AgentTask of this name (uid {approval.bound_uid})",
        )
    if approval.bound_generation != task.generation:
        return Verdict(
            ApprovalState.VOIDED,
            ApprovalReason.TASK_CHANGED,
            f"the task was edited after this approval was read (generation "
            f"{approval.bound_generation}, now {task.generation}): a new approval is needed",
        )
    if not approval.approver:
        return Verdict(
            ApprovalState.IGNORED,
            ApprovalReason.NO_APPROVER,
            f"no {Annotation.APPROVED_BY} annotation: the admission policy that stamps the "
            "approver is not installed",
        )
    if approval.backend not in task.backends:
        return Verdict(
            ApprovalState.IGNORED,
            ApprovalReason.BACKEND_MISMATCH,
            f"CredentialBackend {approval.backend} serves none of the task's credentials "
            f"({', '.join(sorted(task.backends)) or 'none'})",
        )
    if not task.creator:
        return Verdict(
            ApprovalState.IGNORED,
            ApprovalReason.CREATOR_UNKNOWN,
            f"the task has no {Annotation.CREATED_BY} annotation (created before the admission "
            "policy that stamps it): nobody can tell a self-approval; recreate the task",
        )
    if approval.approver in (task.creator, task.service_account_user):
        return Verdict(
            ApprovalState.IGNORED,
            ApprovalReason.SELF_APPROVAL,
            f"{approval.approver} created the task (or is its ServiceAccount) and cannot "
            "approve it",
        )
    if approval.backend not in task.required:
        return Verdict(
            ApprovalState.IGNORED,
            ApprovalReason.NOT_REQUIRED,
            f"CredentialBackend {approval.backend} does not ask for approval for this task",
        )
    state = (
        ApprovalState.APPLIED if approval.state == ApprovalState.APPLIED else ApprovalState.BOUND
    )
    return Verdict(state, ApprovalReason.COUNTED, f"{approval.decision} by {approval.approver}")


class OutcomeKind(StrEnum):
    APPROVED = "Approved"
    DENIED = "Denied"
    TIMED_OUT = "TimedOut"
    WAITING = "Waiting"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    deciding: tuple[Approval, ...] = ()  # the approvals that decided (one per backend)
    missing: tuple[str, ...] = ()  # backends still to approve (Waiting, TimedOut)


def decide(task: TaskFacts, approvals: Iterable[Approval], now: datetime.datetime) -> Outcome:
    """What the counted approvals decide for ``task`` at ``now``."""
    counted = sorted(
        (a for a in approvals if a.task and judge(a, task).counts), key=lambda a: a.created
    )
    denial = next((a for a in counted if a.decision is Decision.DENIED), None)
    if denial is not None:
        return Outcome(OutcomeKind.DENIED, (denial,))
    first: dict[str, Approval] = {}
    for approval in counted:
        first.setdefault(approval.backend, approval)
    missing = tuple(sorted(task.required - first.keys()))
    if not missing:
        return Outcome(OutcomeKind.APPROVED, tuple(first[b] for b in sorted(task.required)))
    if now >= task.deadline:
        return Outcome(OutcomeKind.TIMED_OUT, missing=missing)
    return Outcome(OutcomeKind.WAITING, missing=missing)
