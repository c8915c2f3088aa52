"""The orphan sweep: nothing the operator issued outlives its task.

Every ``AGENTCRED_SWEEP_INTERVAL`` (default 60 s) it lists the lease-record Secrets in the
operator's own namespace (which hold the session parenting every lease ever issued,
recorded in status or not; a look-alike in a tenant namespace is never read) and:

* a session whose task is gone (deleted while no operator ran, or replaced by a new
  task of the same name) is revoked and its Secret deleted;
* a session whose task has ended is cleaned up as the task's end would have;
* every active task with a podSelector has its pods re-assessed, catching pod
  events missed while the operator was down.

Counts go to Prometheus (agentcred_sweep_*) and to one log line per sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentcred import memory, metrics
from agentcred.kube import resources, secrets
from agentcred.kube.errors import KubeError
from agentcred.kube.request_slots import acting_for
from agentcred.kube.secrets import SecretInfo
from agentcred.models.api_names import Annotation, Label
from agentcred.models.errors import SpecError
from agentcred.services import lease_records, lifecycle, revocation
from agentcred.services.deps import Deps
from agentcred.services.errors import TaskRetry
from agentcred.services.task_view import TaskView

log = logging.getLogger("agentcred.sweep")
# Seconds from start to the first sweep: the initial listing of tasks goes first (their
# own resume path cleans up what ended), then whatever a missed deletion left is revoked.
FIRST_SWEEP = 5.0


@dataclass
class SweepResult:
    found: int = 0
    revoked: int = 0
    failed: int = 0


async def sweep(deps: Deps) -> SweepResult:
    result = SweepResult()
    metrics.SWEEP_RUNS.inc()
    listed = await secrets.list_secrets(deps.api, f"{Label.SESSION}=true", deps.settings.namespace)
    for info in listed:
        task_namespace = info.labels.get(Label.TASK_NAMESPACE, "")
        if not deps.settings.serves(task_namespace):
            continue  # another operator's (a namespaced install of its own)
        try:
            await _sweep_record_secret(deps, task_namespace, info, result)
        except Exception as exc:  # a bad record is reported, never stops the sweep
            metrics.count_error("sweep", exc)
            log.warning("lease-record Secret %s skipped: %s", info.name, type(exc).__name__)
    for namespace in deps.settings.namespaces or (None,):
        for body in await resources.list_tasks(deps.api, namespace):
            try:
                await _sweep_pods(deps, body)
            except Exception as exc:
                metrics.count_error("sweep-pods", exc)
                log.warning("pod check of a task failed: %s", type(exc).__name__)
    log.debug("sweep done: %s", result)
    if result.found or result.failed:
        log.info(
            "sweep: %d orphan(s) found, %d session(s) revoked, %d failed",
            result.found,
            result.revoked,
            result.failed,
        )
    return result


async def _sweep_record_secret(
    deps: Deps, namespace: str, info: SecretInfo, result: SweepResult
) -> None:
    name = info.name
    task_name = info.annotations.get(Annotation.TASK_NAME, "")
    uid = info.labels.get(Label.TASK_UID, "")
    known = bool(task_name and namespace)
    body = await resources.get_task(deps.api, namespace, task_name) if known else None
    if body is not None and body["metadata"]["uid"] == uid:
        try:
            task = TaskView.from_body(body)
        except SpecError:
            return
        if task.ended and not task.deleting:
            result.found += 1
            metrics.SWEEP_FOUND.labels(kind="task_ended").inc()
            await _cleanup_ended(deps, task, result)
        return
    result.found += 1
    metrics.SWEEP_FOUND.labels(kind="task_gone").inc()
    await _revoke_orphan(deps, namespace, name, task_name, result)


async def _cleanup_ended(deps: Deps, task: TaskView, result: SweepResult) -> None:
    async with acting_for(task.namespace), deps.locks.hold(task.uid):
        try:
            await lifecycle.cleanup(deps, task)
        except TaskRetry:
            result.failed += 1
            metrics.SWEEP_REVOKE_FAILED.inc()
            return
    result.revoked += 1
    metrics.SWEEP_REVOKED.inc()


async def _revoke_orphan(
    deps: Deps, namespace: str, secret_name: str, task_name: str, result: SweepResult
) -> None:
    own = deps.settings.namespace
    data = await secrets.read_secret_data(deps.api, own, secret_name) or {}
    left: dict[str, str] = {}
    for key, text in data.items():
        try:
            record = lease_records.LeaseRecord.load(text)
        except lease_records.MalformedRecord as exc:
            metrics.count_error("sweep", exc)
            log.warning("lease-record Secret %s entry %s skipped: %s", secret_name, key, exc)
            left[key] = text
            continue
        if await revocation.revoke_record(
            deps, record, namespace=namespace, task=task_name, service_account=""
        ):
            result.revoked += 1
            metrics.SWEEP_REVOKED.inc()
        else:
            result.failed += 1
            metrics.SWEEP_REVOKE_FAILED.inc()
            left[key] = text
    if not left:
        await secrets.delete_secret(deps.api, own, secret_name, owner_uid=None)


async def _sweep_pods(deps: Deps, body: dict[str, object]) -> None:
    try:
        task = TaskView.from_body(body)
    except SpecError:
        return
    if not deps.settings.serves(task.namespace):
        return
    if task.ended or task.deleting or task.spec.pod_selector is None:
        return
    deps.pods.register(task)
    await lifecycle.check_pods(deps, task.namespace, task.name)


async def run_forever(deps: Deps, stopped: Callable[[float], Awaitable[bool]]) -> None:
    """Sweep soon after start (``FIRST_SWEEP`` seconds: a task deleted while no operator
    ran has its leases revoked then, not an interval later), then every interval
    (``stopped`` returns True when it is time to stop)."""
    interval = deps.settings.sweep_interval.total_seconds()
    wait = min(interval, FIRST_SWEEP)
    while not await stopped(wait):
        wait = interval
        try:
            await sweep(deps)
        except (KubeError, TaskRetry) as exc:
            log.warning("sweep failed, retrying next interval: %s", exc)
        except Exception:  # the sweep is the safety net: it must never stop for good
            log.exception("sweep crashed, retrying next interval")
        memory.trim()  # what a burst freed goes back to the OS, not only to the heap
