"""Operator start and stop: Kopf settings, the API login, shared clients, the Secret watch.

The state they set up lives in the typed ``memo`` (:class:`~agentcred.handlers.memo.
OperatorMemo`) that ``cli`` passes to Kopf with the settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import kopf

from agentcred import metrics
from agentcred.backends.registry import BackendRegistry
from agentcred.backends.settings import BackendSettings
from agentcred.handlers.memo import OperatorMemo
from agentcred.kube import calls, client, request_slots, watch
from agentcred.models.api_names import KOPF_FINALIZER, KOPF_PREFIX
from agentcred.services import (
    credential_recheck,
    drift,
    maintenance,
    pod_events,
    quarantine,
    sweep,
)
from agentcred.services.deps import Deps
from agentcred.services.fair_slots import FairSlots, fair_headroom
from agentcred.services.limits import Limits
from agentcred.services.scheduler import Scheduler, TaskKey
from agentcred.settings import Settings

log = logging.getLogger("agentcred")


def backend_settings(config: Settings) -> BackendSettings:
    """What the backends need of the operator's settings."""
    return BackendSettings(
        concurrency=config.backend_concurrency,
        cache_size=config.client_cache_size,
        timeout=config.backend_timeout.total_seconds(),
        azure_verify_challenge_resource=config.azure_verify_challenge_resource,
        azure_ca_bundle=config.azure_ca_bundle,
        azure_api_version=config.azure_api_version,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: OperatorMemo, **_: Any) -> None:
    config = memo.settings
    settings.peering.standalone = True
    # Progress and diff-base live in annotations: the status schemas are structural and
    # would prune Kopf's own status fields; Argo CD ignores annotations it did not set.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)
    # AgentTasks are driven by event handlers (handlers/tasks.py): Kopf stores nothing on
    # them. Kopf's finalizer is a name no object carries, so Kopf never removes the old
    # one (config.finalizer) before our code has finalized the task (task_events.py).
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.posting.enabled = False  # Events are posted explicitly, with stable reasons
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Kopf lists in one unpaged request by default: at 20,000 tasks a restart (or a re-list
    # after 410 Gone) would parse every task at once. Pages as our own lists (kube/calls).
    settings.watching.chunk_size = calls.PAGE_SIZE
    settings.networking.request_timeout = 30
    settings.batching.error_delays = (1, 2, 5, 10, 20, 40, 60)
    api = await client.make_api_client()
    turns = config.api_concurrency
    request_slots.install(FairSlots(turns, config.namespace_share, fair_headroom(turns)))
    deps = Deps(
        api=api,
        settings=config,
        backends=BackendRegistry(backend_settings(config)),
    )
    deps.limits = Limits(
        config.target_concurrency, config.namespace_concurrency, config.namespace_share
    )
    deps.scheduler = Scheduler(share=config.namespace_share)
    # Quarantines before any task handler runs: a matching task is refused from the start.
    await quarantine.load(deps)
    memo.started = deps
    stop = memo.stop
    metrics.serve(config.metrics_port)

    async def on_secret(event_type: str, obj: dict[str, Any]) -> None:
        await drift.on_secret_event(deps, event_type, obj)

    async def on_pod(event_type: str, obj: dict[str, Any]) -> None:
        pod_events.on_pod_event(deps, event_type, obj)  # queued: the watch never waits

    async def stopped(seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        return stop.is_set()

    async def step(key: TaskKey, attempt: int) -> float | None:
        return await maintenance.step(deps, key, attempt)

    background: list[Coroutine[Any, Any, None]] = [
        sweep.run_forever(deps, stopped),
        credential_recheck.run_forever(deps, stopped),
        deps.scheduler.run(step, stop),
    ]

    async def watch_generated_secrets(namespace: str | None) -> None:
        await drift.seed(deps, namespace)
        await watch.watch_secrets(api, drift.SELECTOR, on_secret, stop, namespace)

    for namespace in config.namespaces or (None,):
        background.append(watch_generated_secrets(namespace))
        background.append(watch.watch_pods(api, config.pod_selector, on_pod, stop, namespace))
    memo.watchers.extend(asyncio.create_task(c) for c in background)


@kopf.on.cleanup()
async def shutdown(memo: OperatorMemo, **_: Any) -> None:
    memo.stop.set()
    request_slots.install(None)
    for task in memo.watchers:
        task.cancel()
    deps = memo.started
    if deps is not None:
        await deps.backends.aclose()
        await deps.api.close()


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """In a pod: the mounted ServiceAccount; elsewhere: the kubeconfig (KUBECONFIG). Kopf's
    requests take the same fair turns as ours (kube/request_slots.py)."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    return client.make_kopf_session(info) if info is not None else None
