"""Enforce a CredentialQuarantine: every matching active task ends now (Failed,
``Quarantined``), its leases revoked at their backends and its Secrets deleted; the
quarantine's status says how many, what could not be revoked yet, and how long it took.

One enforcement costs one paged LIST of the served tasks (only what matching needs is
kept of each), one LIST of AgentCredentials when the quarantine names backends and one of
namespaces when it selects them: never a LIST per task. Matching is pure
(models/quarantine.py). The matched tasks are then handled in two passes, ``ENDING`` at
once, shared fairly between namespaces (``FairSlots``), each task under its lock:

1. *contain*, from the task as listed: its Secrets deleted (what pods read), every session
   in its lease records revoked at the backend (every backend call holds its target's and
   namespace's slots, services/limits.py), the records dropped;
2. *conclude*, from the task read fresh: the final status (``Failed``/``Quarantined``, the
   entries revoked) and its Event; a task the first pass could not finish, or that
   changed meanwhile, goes the full way (``lifecycle.end``).

So every Secret is gone and every lease revoked before the first status patch is sent:
the measured target (``make bench ARGS="--scenarios quarantine"``) is about those. While
a task is between the passes, drift repair leaves its deleted Secret alone
(services/drift.py asks ``authorization.quarantined``).

A task that cannot be fully revoked yet is listed in ``status.failures`` and the whole
enforcement is retried (``QuarantineIncomplete``): tasks already ended by the quarantine
only have what they still hold cleaned up. New tasks are refused on the issuance path
(``authorization.quarantined``) from the operator's index, which is loaded at startup and
kept from the watch (``observe``): lifting is deleting the quarantine, and nothing is
re-issued for the tasks it ended.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentcred import metrics
from agentcred.kube import resources
from agentcred.kube.objects import Body
from agentcred.models.api_names import ConditionType, EventReason, Reason
from agentcred.models.errors import OperatorError, SpecError
from agentcred.models.quarantine import (
    Quarantine,
    TaskSubject,
    ended_by,
    matches,
    parse_quarantine_spec,
)
from agentcred.models.status import Condition, EntryState, Phase, condition, timestamp
from agentcred.models.task import DEFAULT_SERVICE_ACCOUNT
from agentcred.services import (
    issuance,
    lease_records,
    lifecycle,
    report,
    revocation,
    task_status,
)
from agentcred.services.deps import Deps
from agentcred.services.errors import TaskRetry
from agentcred.services.fair_slots import FairSlots
from agentcred.services.task_view import TaskView, parse_time

log = logging.getLogger("agentcred.quarantine")

ENDING = 64  # matched tasks ended at once by one enforcement
SHOWN = 20  # task names kept in status.tasks / status.failures
RETRY_SECONDS = 10.0


class QuarantineIncomplete(OperatorError):
    """Something a matched task holds could not be revoked yet: enforce again."""

    retry_after = RETRY_SECONDS


@dataclass(frozen=True)
class Candidate:
    """A listed task, as much of it as matching needs, and the body as listed."""

    subject: TaskSubject
    uid: str
    body: Body


@dataclass
class Tally:
    matched: list[str] = field(default_factory=list)
    revoked: int = 0
    failures: list[str] = field(default_factory=list)


def observe(deps: Deps, name: str, spec: Mapping[str, Any], *, deleted: bool) -> Quarantine | None:
    """A quarantine was seen (or deleted): keep the operator's index in step. None when
    it is gone or its spec cannot be used (logged; the CRD's rules normally refuse it)."""
    if deleted:
        deps.quarantines.remove(name)
        metrics.quarantine_lifted(name)
        log.info("CredentialQuarantine %s lifted", name)
        return None
    try:
        quarantine = Quarantine(name, parse_quarantine_spec(spec))
    except SpecError as exc:
        log.warning("CredentialQuarantine %s ignored: %s", name, exc)
        deps.quarantines.remove(name)
        return None
    deps.quarantines.put(quarantine)
    return quarantine


async def load(deps: Deps) -> None:
    """Every quarantine that exists, into the index (at startup, before any task handler)."""
    found = []
    for body in await resources.list_quarantines(deps.api):
        name = str(body["metadata"]["name"])
        try:
            found.append(Quarantine(name, parse_quarantine_spec(body.get("spec") or {})))
        except SpecError as exc:
            log.warning("CredentialQuarantine %s ignored: %s", name, exc)
    deps.quarantines.replace(found)


async def enforce(deps: Deps, body: Mapping[str, Any]) -> None:
    """End every task the quarantine matches and record the outcome on its status;
    ``QuarantineIncomplete`` while something could not be revoked yet."""
    meta = body["metadata"]
    name, generation = str(meta["name"]), meta.get("generation")
    quarantine = observe(deps, name, body.get("spec") or {}, deleted=False)
    if quarantine is None:
        return
    status = body.get("status") or {}
    # A retry of an unfinished enforcement keeps its start (the time it took counts from
    # the first try); a new generation, or a check at operator start, times itself.
    retrying = (
        status.get("observedGeneration") == generation
        and status.get("startedAt")
        and not status.get("completedAt")
    )
    started = (parse_time(status.get("startedAt")) if retrying else None) or deps.clock()
    await resources.patch_quarantine_status(
        deps.api,
        name,
        {
            "observedGeneration": generation,
            "startedAt": timestamp(started),
            "completedAt": None,
            "conditions": [_complete(False, Reason.REVOKING, "ending matched tasks", deps)],
        },
    )
    candidates = await _candidates(deps, quarantine)
    tally = await _end_all(deps, quarantine, candidates)
    await _record(deps, name, generation, started, tally)
    if tally.failures:
        raise QuarantineIncomplete(
            f"CredentialQuarantine {name}: {len(tally.failures)} task(s) still hold "
            "credentials; retrying"
        )


async def _candidates(deps: Deps, quarantine: Quarantine) -> list[Candidate]:
    """The served tasks it matches (one paged LIST per served scope)."""
    backends: dict[tuple[str, str], str] = {}
    if quarantine.spec.needs_backends:
        for ns in _scopes(deps):
            for key, backend in await resources.list_credential_parts(deps.api, _backend_ref, ns):
                backends[key] = backend
    labels: dict[str, dict[str, str]] | None = None
    if quarantine.spec.needs_namespace_labels:
        labels = await resources.all_namespace_labels(deps.api)

    def keep(task: Body) -> Candidate | None:
        candidate = _candidate(task, backends, labels)
        if candidate is None or not deps.settings.serves(candidate.subject.namespace):
            return None
        return candidate if matches(quarantine.spec, candidate.subject) else None

    found: list[Candidate] = []
    for ns in _scopes(deps):
        found += [c for c in await resources.list_task_parts(deps.api, keep, ns) if c is not None]
    return found


def _scopes(deps: Deps) -> tuple[str | None, ...]:
    return deps.settings.namespaces or (None,)


def _backend_ref(body: Body) -> tuple[tuple[str, str], str]:
    meta = body.get("metadata") or {}
    ref = ((body.get("spec") or {}).get("backendRef") or {}).get("name")
    return (str(meta.get("namespace")), str(meta.get("name"))), str(ref or "")


def _candidate(
    body: Body,
    backends: Mapping[tuple[str, str], str],
    labels: Mapping[str, Mapping[str, str]] | None,
) -> Candidate | None:
    """A listed task as matching sees it; None for one already ended by something else
    or being deleted (its finalizer revokes what it holds)."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    phase = str(status.get("phase") or "")
    if meta.get("deletionTimestamp"):
        return None
    if phase in {p.value for p in Phase if p.ended} and status.get("reason") != Reason.QUARANTINED:
        return None
    namespace = str(meta.get("namespace") or "")
    credentials = tuple(
        str(c.get("name")) for c in spec.get("credentials") or [] if isinstance(c, dict)
    )
    return Candidate(
        TaskSubject(
            namespace=namespace,
            name=str(meta.get("name") or ""),
            service_account=str(spec.get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT),
            credentials=credentials,
            labels=dict(meta.get("labels") or {}),
            namespace_labels=None if labels is None else dict(labels.get(namespace) or {}),
            backends=tuple(b for c in credentials if (b := backends.get((namespace, c)))),
        ),
        uid=str(meta.get("uid") or ""),
        body=body,
    )


async def _end_all(deps: Deps, quarantine: Quarantine, candidates: list[Candidate]) -> Tally:
    """Passes over the matched tasks, so that what matters most is done first for all of
    them: ``_delete_secrets``, then ``_contain`` (sessions revoked, lease records dropped),
    then ``_conclude`` (the final status and Event, or the full ``lifecycle.end`` wherever the
    first pass could not finish)."""
    tally = Tally()
    slots = FairSlots(ENDING, deps.settings.namespace_share)
    contained: dict[str, int] = {}
    unexposed: set[str] = set()

    async def unexpose(candidate: Candidate) -> None:
        async with slots.hold(candidate.subject.namespace):
            if await _delete_secrets(deps, candidate):
                unexposed.add(candidate.uid)

    async def contain(candidate: Candidate) -> None:
        async with slots.hold(candidate.subject.namespace):
            revoked = await _contain(deps, candidate, candidate.uid in unexposed)
            if revoked is not None:
                contained[candidate.uid] = revoked

    async def conclude(candidate: Candidate) -> None:
        async with slots.hold(candidate.subject.namespace):
            await _conclude(deps, quarantine, candidate, contained.get(candidate.uid), tally)

    # The Secrets of every matched task first (API requests only, quick): what pods read
    # is gone before the first of the slower backend revocations is waited for.
    await asyncio.gather(*(unexpose(c) for c in candidates))
    await asyncio.gather(*(contain(c) for c in candidates))
    await asyncio.gather(*(conclude(c) for c in candidates))
    return tally


async def _delete_secrets(deps: Deps, candidate: Candidate) -> bool:
    """Under the task's lock, from the task as listed: delete its generated Secrets. False
    when the task ended otherwise or an API call failed (``_contain`` tries again)."""
    try:
        task = TaskView.from_body(candidate.body)
    except SpecError:
        return False
    if task.ended:
        return False
    async with deps.locks.hold(task.uid):
        try:
            for ref in task.spec.credentials:
                await issuance.delete_secret(deps, task, ref)
        except OperatorError as exc:
            log.info(
                "quarantine: %s/%s Secrets not deleted yet: %s", task.namespace, task.name, exc
            )
            return False
    return True


async def _contain(deps: Deps, candidate: Candidate, unexposed: bool = False) -> int | None:
    """Under the task's lock, from the task as listed: delete its generated Secrets, revoke
    every session in its lease records, drop the records. The sessions revoked, or None
    when something is left (the task ended otherwise, a session not revocable yet: the
    second pass takes the full way)."""
    try:
        task = TaskView.from_body(candidate.body)
    except SpecError:
        return None
    if task.ended:
        return None  # ended by this quarantine before: the second pass cleans up what is left
    async with deps.locks.hold(task.uid):
        try:
            if not unexposed:  # its Secrets not deleted by the first pass yet
                for ref in task.spec.credentials:
                    await issuance.delete_secret(deps, task, ref)
            records = await lease_records.load(deps, task.uid)
            left = {
                key: record
                for key, record in records.items()
                if not await revocation.revoke_for_task(deps, task, record)
            }
            if records:
                await lease_records.save(deps, task, left)
        except OperatorError as exc:  # an API call failed: the second pass tries again
            log.info("quarantine: %s/%s not contained yet: %s", task.namespace, task.name, exc)
            return None
    return None if left else len(records)


async def _conclude(
    deps: Deps,
    quarantine: Quarantine,
    candidate: Candidate,
    contained: int | None,
    tally: Tally,
) -> None:
    """Under the task's lock, read fresh: record it Failed/Quarantined. A task the first
    pass contained and nobody touched since needs only its final status and Event; any
    other goes the full way (``lifecycle.end``, or ``cleanup`` for one already ended)."""
    subject = candidate.subject
    label = f"{subject.namespace}/{subject.name}"
    async with deps.locks.hold(candidate.uid):
        body = await resources.get_task(deps.api, subject.namespace, subject.name)
        if body is None or body["metadata"].get("uid") != candidate.uid:
            return  # deleted meanwhile: its finalizer revokes
        try:
            task = TaskView.from_body(body)
        except SpecError:
            return  # nothing is ever issued for a spec the operator cannot read
        if task.deleting:
            return
        reason, message = str(task.status.get("reason")), str(task.status.get("message"))
        if task.ended and not ended_by(quarantine.name, reason, message):
            return  # ended by something else meanwhile
        tally.matched.append(label)
        done = sum(1 for e in task.entries if e.state in (EntryState.ISSUED, EntryState.PENDING))
        done += sum(1 for e in task.entries if e.state is EntryState.REVOKED)
        untouched = task.status.get("credentials") == (candidate.body.get("status") or {}).get(
            "credentials"
        )
        try:
            if not task.ended and contained is not None and untouched:
                await _record_end(deps, task, quarantine)
            elif not task.ended:
                await lifecycle.end(
                    deps, task, Phase.FAILED, Reason.QUARANTINED, quarantine.message
                )
            elif await lifecycle.cleanup_pending(deps, task):
                await lifecycle.cleanup(deps, task)
        except TaskRetry as retry:
            tally.failures.append(f"{label}: {retry.message}")
            return
        except OperatorError as exc:  # an API or backend error: retried with the rest
            tally.failures.append(f"{label}: {type(exc).__name__}")
            return
        deps.scheduler.forget(task.uid)
        tally.revoked += done


async def _record_end(deps: Deps, task: TaskView, quarantine: Quarantine) -> None:
    """What ``lifecycle.end`` writes when its cleanup is already done: the final phase and
    the revoked entries in one status patch, then the TaskEnded Event."""
    deps.pods.unregister(task.namespace, task.uid)
    final = task_status.ended(
        task.status,
        Phase.FAILED,
        Reason.QUARANTINED,
        quarantine.message,
        task.generation,
        deps.clock(),
    )
    await lifecycle.patch(
        deps, task, {**final, **task_status.with_entries(task_status.revoked(task.entries))}
    )
    deps.cleaned.add(task.uid)
    await report.event(
        deps.api, task, EventReason.ENDED, f"task Failed: {quarantine.message}", warning=True
    )


async def _record(
    deps: Deps, name: str, generation: int | None, started: datetime.datetime, tally: Tally
) -> None:
    now = deps.clock()
    seconds = (now - started).total_seconds()
    complete = not tally.failures
    if complete:
        message = (
            f"{len(tally.matched)} task(s) ended, {tally.revoked} credential(s) revoked "
            f"in {seconds:.2f}s"
        )
    else:
        message = f"{len(tally.failures)} task(s) still hold credentials; retrying"
    await resources.patch_quarantine_status(
        deps.api,
        name,
        {
            "observedGeneration": generation,
            "matchedTasks": len(tally.matched),
            "leasesRevoked": tally.revoked,
            "revokeFailures": len(tally.failures),
            "tasks": sorted(tally.matched)[:SHOWN],
            "failures": sorted(tally.failures)[:SHOWN],
            "completedAt": timestamp(now) if complete else None,
            "conditions": [
                _complete(
                    complete, Reason.ENFORCED if complete else Reason.REVOKE_FAILED, message, deps
                )
            ],
        },
    )
    metrics.QUARANTINE_REVOKE_FAILURES.labels(name).set(len(tally.failures))
    log.info("CredentialQuarantine %s: %s", name, message)


def _complete(ok: bool, reason: str, message: str, deps: Deps) -> Condition:
    return condition(
        ConditionType.COMPLETE,
        ok=ok,
        reason=reason,
        message=message,
        generation=None,
        now=deps.clock(),
    )
