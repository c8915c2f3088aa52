"""Re-check every AgentCredential periodically (backend reachability can change).

A background loop rather than a Kopf timer: Kopf puts a finalizer on every object
with a timer, and a finalizer on AgentCredentials would block deleting them whenever
the operator is not running, for no benefit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agentcred import metrics
from agentcred.kube import resources
from agentcred.kube.errors import KubeError
from agentcred.services import credential_status
from agentcred.services.deps import Deps

log = logging.getLogger("agentcred.credentials")
INTERVAL_SECONDS = 300.0
PARALLEL = 16


async def recheck_all(deps: Deps, backend: str | None = None) -> int:
    """Re-check every AgentCredential (only those using ``backend``, when given).

    Checks run concurrently (at most ``PARALLEL``), each isolated: a slow backend's check
    delays nobody else's, and one that fails is logged, counted and skipped."""
    bodies = []
    for namespace in deps.settings.namespaces or (None,):
        for body in await resources.list_credentials(deps.api, namespace):
            meta = body["metadata"]
            ref = ((body.get("spec") or {}).get("backendRef") or {}).get("name")
            if (backend is None or ref == backend) and deps.settings.serves(meta["namespace"]):
                bodies.append(body)
    gate = asyncio.Semaphore(PARALLEL)

    async def one(body: dict[str, Any]) -> bool:
        meta = body["metadata"]
        async with gate:
            try:
                await _recheck_one(deps, body)
            except Exception as exc:  # one bad credential never stops the others' re-check
                metrics.count_error("credential-recheck", exc)
                log.exception(
                    "re-check of AgentCredential %s/%s failed", meta["namespace"], meta["name"]
                )
                return False
        return True

    return sum(await asyncio.gather(*(one(b) for b in bodies)))


async def _recheck_one(deps: Deps, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    status = await credential_status.evaluate(
        deps,
        meta["namespace"],
        meta["name"],
        body.get("spec") or {},
        meta.get("generation"),
        body.get("status") or {},
    )
    await resources.patch_credential_status(deps.api, meta["namespace"], meta["name"], status)


async def run_forever(deps: Deps, stopped: Callable[[float], Awaitable[bool]]) -> None:
    while not await stopped(INTERVAL_SECONDS):
        try:
            await recheck_all(deps)
        except KubeError as exc:
            log.warning("credential re-check failed, retrying next interval: %s", exc)
        except Exception:  # keep re-checking whatever one credential does
            log.exception("credential re-check crashed, retrying next interval")
