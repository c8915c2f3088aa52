"""React to pod events: re-assess the tasks whose podSelector selects the pod.

The pod watch serves every tenant, so it never does the work itself: it queues one
re-assessment per selected task (coalesced: a pod whose labels churn costs each task
one run, not one per event) and goes on. A few workers run them, shared fairly across
namespaces (deps.pod_checks), so one namespace's flood of pod events cannot delay
another's pod-bound revocation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agentcred.services import lifecycle
from agentcred.services.coalesce import Job
from agentcred.services.deps import Deps

log = logging.getLogger("agentcred.pods")


def on_pod_event(deps: Deps, event_type: str, pod: Mapping[str, Any]) -> None:
    meta = pod.get("metadata") or {}
    namespace, labels = meta.get("namespace", ""), meta.get("labels") or {}
    if not deps.settings.serves(namespace):
        return
    tasks = deps.pods.tasks_selecting(namespace, labels)
    log.debug(
        "pod %s %s/%s selects %d task(s)", event_type, namespace, meta.get("name"), len(tasks)
    )
    for task in tasks:
        deps.pod_checks.submit((namespace, task), _check(deps, namespace, task), group=namespace)


def _check(deps: Deps, namespace: str, task: str) -> Job:
    async def run() -> None:  # a failure is logged and counted by the coalescer
        await lifecycle.check_pods(deps, namespace, task)

    return run
