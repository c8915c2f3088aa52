"""The approval gate: before anything is requested for a task's credentials, ask whether
a person must approve, and act on the AgentTaskApprovals that answer.

``gate`` runs in ``lifecycle._start`` under the task's lock, before the first credential
is issued (credentials already issued once are not gated again: a requirement added to
a backend later applies to new tasks; quarantine is the tool for running ones). It only
reads the cluster (the AgentCredential and CredentialBackend, from the watch-fed cache
issuance reads too, and the namespace's approvals): no token is requested and no backend
called until every backend that asks has approved. Its answer is a ``Gate``: go on (with the
approval record to ride on the first issuance patch), wait (``AwaitingApproval``, the
timeout scheduled at its deadline), or end the task (denied, timed out).

``on_approval`` is the approval watch's: it binds a new approval to its task as the
operator first reads it (the task's uid and generation, on the approval's status) and
wakes the task's scheduled step, which runs the gate again.

The decisions themselves are pure (models/approval.py).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentcred import metrics
from agentcred.kube import approvals as approvals_api
from agentcred.kube import resources
from agentcred.kube.errors import KubeNotFound
from agentcred.models import approval as model
from agentcred.models.api_names import ApprovalReason, EventReason, Reason
from agentcred.models.backend import ApprovalPolicy, parse_backend_spec
from agentcred.models.credential import parse_credential_spec
from agentcred.models.errors import SpecError
from agentcred.models.status import (
    ApprovalDecision,
    ApprovalRecord,
    Phase,
    TaskStatus,
    timestamp,
)
from agentcred.models.task import CredentialRef
from agentcred.services import cluster_view, issuance, report, task_status
from agentcred.services.deps import Deps
from agentcred.services.errors import TaskFailed, TaskRetry
from agentcred.services.scheduler import TaskKey
from agentcred.services.task_view import TaskView, parse_time

log = logging.getLogger("agentcred.approval")


@dataclass(frozen=True)
class Gate:
    """What the gate decided: ``go`` (issue, with ``status`` merged into the first
    patch); else wait (``wait``: the status to write, empty when nothing changed, and
    the step scheduled in ``delay`` seconds) or end the task (``end``, with ``status``)."""

    go: bool
    status: TaskStatus = field(default_factory=TaskStatus)
    wait: Mapping[str, Any] | None = None
    delay: float = 0.0
    end: tuple[Phase, str, str] | None = None


GO = Gate(go=True)


async def gate(
    deps: Deps, task: TaskView, refs: list[CredentialRef], starting: Mapping[str, Any]
) -> Gate:
    """May ``refs`` (credentials never issued for this task) be issued now?"""
    fresh = [ref for ref in refs if task.entry(ref.name) is None]
    if not fresh:
        return GO
    facts = await task_facts(deps, task, fresh)
    if not facts.required:
        _not_waiting(deps, task.uid)
        return GO
    approvals = await _read(deps, task, facts)
    outcome = model.decide(facts, approvals, deps.clock())
    await _mark(deps, task, facts, approvals, outcome)
    record = _record(facts, outcome, task.generation)
    if outcome.kind is model.OutcomeKind.APPROVED:
        _not_waiting(deps, task.uid)
        if (task.status.get("approval") or {}).get("decision") != outcome.kind.value:
            metrics.APPROVAL_DECISIONS.labels("Approved").inc()  # once, not per issue retry
            message = "; ".join(_told(a) for a in outcome.deciding)
            await report.reporter(deps).tell(task, _fact("approved", outcome, message))
        return Gate(go=True, status=TaskStatus(approval=record))
    if outcome.kind is model.OutcomeKind.DENIED:
        _not_waiting(deps, task.uid)
        metrics.APPROVAL_DECISIONS.labels("Denied").inc()
        denial = outcome.deciding[0]
        message = f"denied: {_told(denial)}"
        report.trail(task, _audit("denied", outcome, reason=denial.reason))
        return Gate(
            go=False,
            status=TaskStatus(approval=record),
            end=_ending(Reason.APPROVAL_DENIED, message),
        )
    if outcome.kind is model.OutcomeKind.TIMED_OUT:
        _not_waiting(deps, task.uid)
        metrics.APPROVAL_DECISIONS.labels("TimedOut").inc()
        message = (
            f"no approval from CredentialBackend(s) {', '.join(outcome.missing)} before "
            f"{timestamp(facts.deadline)} (created {timestamp(facts.created)}, timeout "
            f"{int(facts.timeout.total_seconds())}s)"
        )
        report.trail(task, _audit("timed-out", outcome))
        return Gate(
            go=False,
            status=TaskStatus(approval=record),
            end=_ending(Reason.APPROVAL_TIMED_OUT, message),
        )
    wait = await _wait(deps, task, facts, outcome, record, starting)
    delay = max(0.0, (facts.deadline - deps.clock()).total_seconds())
    return Gate(go=False, wait=wait, delay=delay)


def _ending(reason: str, message: str) -> tuple[Phase, str, str]:
    return Phase.FAILED, reason, message


async def task_facts(deps: Deps, task: TaskView, refs: list[CredentialRef]) -> model.TaskFacts:
    """The task's backends, those that ask for approval for it, and the shortest timeout.
    A credential that does not resolve (refused by the allow-list, its backend missing) is
    not gated: issuance then fails or waits with its own reason, before any backend call,
    and nobody is asked to approve what would be refused anyway."""
    backends: set[str] = set()
    required: dict[str, ApprovalPolicy] = {}
    for ref in task.spec.credentials:
        name = await _backend_name(deps, task, ref)
        if name:
            backends.add(name)
    for ref in refs:
        name = await _backend_name(deps, task, ref)
        policy = await _policy(deps, name) if name else None
        if policy is None:
            continue
        try:
            bound = await issuance.resolve(deps, task, ref)
        except (TaskFailed, TaskRetry):
            continue  # refused or not resolvable yet: issuance says so, before any backend call
        if model.needs_approval(
            policy,
            bound.spec,
            namespace=task.namespace,
            service_account=task.spec.service_account_name,
        ):
            required[name] = policy
    timeout = min((model.wait(p) for p in required.values()), default=model.DEFAULT_TIMEOUT)
    return model.TaskFacts(
        uid=task.uid,
        generation=task.generation or 0,
        creator=task.created_by,
        service_account_user=model.service_account_user(
            task.namespace, task.spec.service_account_name
        ),
        backends=frozenset(backends),
        required=frozenset(required),
        created=task.created,
        timeout=timeout,
    )


async def _backend_name(deps: Deps, task: TaskView, ref: CredentialRef) -> str:
    spec = await cluster_view.credential(deps, task.namespace, ref.name)
    if spec is None:
        return ""
    try:
        return parse_credential_spec(spec).backend_ref.name
    except SpecError:
        return ""  # issuance says why


async def _policy(deps: Deps, backend: str) -> ApprovalPolicy | None:
    spec = await cluster_view.backend(deps, backend)
    if spec is None:
        return None
    try:
        return parse_backend_spec(spec).approval
    except SpecError:
        return None  # issuance refuses the backend (InvalidBackend)


async def _read(deps: Deps, task: TaskView, facts: model.TaskFacts) -> list[model.Approval]:
    """The task's approvals; a new one is bound to the task as it is now (first read)."""
    found: list[model.Approval] = []
    for listed in await approvals_api.list_for_task(deps.api, task.namespace, task.name):
        body = listed if listed.get("status") else await _bind(deps, task, listed) or listed
        found.append(_parse(body))
    return found


def _parse(body: Mapping[str, Any]) -> model.Approval:
    created = parse_time((body.get("metadata") or {}).get("creationTimestamp"))
    return model.Approval.from_body(body, created or datetime.datetime.now(datetime.UTC))


async def _bind(deps: Deps, task: TaskView, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    name = str(body["metadata"]["name"])
    status = {
        "taskUID": task.uid,
        "taskGeneration": task.generation or 0,
        "boundAt": timestamp(deps.clock()),
        "state": model.ApprovalState.BOUND.value,
        "reason": ApprovalReason.COUNTED.value,
        "message": f"bound to AgentTask {task.name} (uid {task.uid}, generation {task.generation})",
    }
    try:
        return await approvals_api.patch_status(deps.api, task.namespace, name, status)
    except KubeNotFound:
        return None


async def _mark(
    deps: Deps,
    task: TaskView,
    facts: model.TaskFacts,
    approvals: list[model.Approval],
    outcome: model.Outcome,
) -> None:
    """Say on each approval how it was judged (only what changed is written)."""
    deciding = {a.name for a in outcome.deciding}
    final = outcome.kind in (model.OutcomeKind.APPROVED, model.OutcomeKind.DENIED)
    for approval in approvals:
        if not approval.bound:
            continue
        verdict = model.judge(approval, facts)
        state, reason, message = verdict.state, verdict.reason, verdict.message
        if verdict.counts and final:
            if approval.name in deciding:
                state = model.ApprovalState.APPLIED
                message = f"{outcome.kind} AgentTask {task.name} (generation {task.generation})"
            else:
                continue  # counted, but another decided: left as it is
        if approval.state == state and state != model.ApprovalState.BOUND:
            continue
        if state == model.ApprovalState.BOUND:
            continue  # bound when read; nothing new to say until it decides
        if state in (model.ApprovalState.IGNORED, model.ApprovalState.VOIDED):
            log.info(
                "%s/%s: approval %s %s: %s",
                task.namespace,
                task.name,
                approval.name,
                state,
                message,
            )
            await report.event(
                deps.api,
                task,
                EventReason.APPROVAL_IGNORED,
                f"AgentTaskApproval {approval.name} {state.lower()}: {message}",
                warning=True,
            )
        try:
            await approvals_api.patch_status(
                deps.api,
                task.namespace,
                approval.name,
                {"state": state.value, "reason": reason, "message": message},
            )
        except KubeNotFound:
            continue


def _record(
    facts: model.TaskFacts, outcome: model.Outcome, generation: int | None
) -> ApprovalRecord:
    record = ApprovalRecord(backends=sorted(facts.required), deadline=timestamp(facts.deadline))
    if outcome.kind is not model.OutcomeKind.WAITING:
        record["decision"] = outcome.kind.value
        record["generation"] = generation or 0
    record["decisions"] = [
        ApprovalDecision(
            approval=a.name,
            backend=a.backend,
            approver=a.approver or "",
            decision=a.decision.value,
            reason=a.reason,
        )
        for a in outcome.deciding
    ]
    return record


async def _wait(
    deps: Deps,
    task: TaskView,
    facts: model.TaskFacts,
    outcome: model.Outcome,
    record: ApprovalRecord,
    starting: Mapping[str, Any],
) -> Mapping[str, Any]:
    """Pending, AwaitingApproval (an Event the first time): the status to write, empty
    when the task already says so."""
    message = (
        f"waiting for approval from CredentialBackend(s) {', '.join(outcome.missing)} until "
        f"{timestamp(facts.deadline)}: someone holding verb approve on it creates an "
        f"AgentTaskApproval (kubectl agentcred approve {task.name} -n {task.namespace})"
    )
    _waiting(deps, task.uid, facts.created)
    first = task.status.get("reason") != Reason.AWAITING_APPROVAL
    if not first and not starting:
        return {}
    if first:
        await report.event(deps.api, task, EventReason.AWAITING_APPROVAL, message)
    now = deps.clock()
    return {
        **starting,
        **(task_status.pending(task.status, task.generation, now) if task.phase is None else {}),
        "phase": Phase.PENDING.value,
        "reason": Reason.AWAITING_APPROVAL.value,
        "message": message,
        "approval": record,
        "conditions": task_status.ready(
            task.status, False, Reason.AWAITING_APPROVAL, message, task.generation, now
        ),
    }


def awaiting(task: TaskView) -> bool:
    return task.phase == Phase.PENDING and task.status.get("reason") == Reason.AWAITING_APPROVAL


def until_deadline(deps: Deps, task: TaskView) -> float:
    """Seconds until a waiting task's approval deadline (its step then times it out)."""
    deadline = parse_time((task.status.get("approval") or {}).get("deadline"))
    if deadline is None:
        return 0.0
    return max(0.0, (deadline - deps.clock()).total_seconds())


def voided(task: TaskView) -> str | None:
    """Why an approved task's approval no longer holds (it was edited since), or None."""
    record = task.status.get("approval") or {}
    if record.get("decision") != model.OutcomeKind.APPROVED.value:
        return None
    approved = record.get("generation")
    if approved is None or task.generation is None or approved == task.generation:
        return None
    return (
        f"the task was edited after its approval (approved generation {approved}, now "
        f"{task.generation}): everything revoked; create a new task and ask for approval again"
    )


async def mark_voided(deps: Deps, task: TaskView) -> None:
    """The approvals that approved ``task`` say they were voided by its edit."""
    metrics.APPROVAL_DECISIONS.labels("Voided").inc()
    for decision in (task.status.get("approval") or {}).get("decisions") or []:
        try:
            await approvals_api.patch_status(
                deps.api,
                task.namespace,
                str(decision.get("approval")),
                {
                    "state": model.ApprovalState.VOIDED.value,
                    "reason": ApprovalReason.TASK_CHANGED.value,
                    "message": f"AgentTask {task.name} was edited after approval "
                    f"(generation now {task.generation}): this approval no longer holds",
                },
            )
        except KubeNotFound:
            continue


async def on_approval(deps: Deps, body: Mapping[str, Any]) -> None:
    """A new (or listed) approval: bind it to its task as it is now and wake the task."""
    approval = _parse(body)
    if approval.state in (
        model.ApprovalState.APPLIED,
        model.ApprovalState.IGNORED,
        model.ApprovalState.VOIDED,
    ):
        return
    namespace = str(body["metadata"]["namespace"])
    task_body = await resources.get_task(deps.api, namespace, approval.task)
    if task_body is None:
        if not approval.bound:
            await _patch_quietly(
                deps,
                namespace,
                approval.name,
                {
                    "state": model.ApprovalState.IGNORED.value,
                    "reason": ApprovalReason.TASK_NOT_FOUND.value,
                    "message": f"AgentTask {namespace}/{approval.task} did not exist when this "
                    "approval was read: create the approval after the task",
                },
            )
        return
    try:
        task = TaskView.from_body(task_body)
    except SpecError:
        return
    async with deps.locks.hold(task.uid):
        if not approval.bound:
            await _bind(deps, task, body)
    deps.scheduler.wake(TaskKey(task.uid, task.namespace, task.name))


async def _patch_quietly(deps: Deps, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    try:
        await approvals_api.patch_status(deps.api, namespace, name, status)
    except KubeNotFound:
        return


def _told(approval: model.Approval) -> str:
    why = f": {approval.reason}" if approval.reason else ""
    return (
        f"{approval.decision} by {approval.approver} for CredentialBackend {approval.backend}{why}"
    )


def _audit(outcome_word: str, outcome: model.Outcome, *, reason: str = "") -> report.Audit:
    first = outcome.deciding[0] if outcome.deciding else None
    return report.Audit(
        "approve",
        outcome_word,
        "",
        ",".join(sorted({a.backend for a in outcome.deciding} | set(outcome.missing))),
        reason=reason or (first.reason if first else ""),
        approver=",".join(a.approver or "" for a in outcome.deciding),
    )


def _fact(word: str, outcome: model.Outcome, message: str) -> report.Fact:
    return report.Fact(message, event=EventReason.APPROVED, audit=_audit(word, outcome))


def _waiting(deps: Deps, uid: str, since: datetime.datetime) -> None:
    deps.awaiting.setdefault(uid, since.timestamp())
    _gauges(deps)


def _not_waiting(deps: Deps, uid: str) -> None:
    if deps.awaiting.pop(uid, None) is not None:
        _gauges(deps)


def forget(deps: Deps, uid: str) -> None:
    """The task ended or went: it waits no more."""
    _not_waiting(deps, uid)


def _gauges(deps: Deps) -> None:
    metrics.APPROVALS_WAITING.set(len(deps.awaiting))
    metrics.APPROVAL_OLDEST_WAITING.set(min(deps.awaiting.values(), default=0.0))
