"""React to pod events: re-assess the tasks whose podSelector selects the pod."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agentcred import metrics
from agentcred.services import lifecycle
from agentcred.services.deps import Deps

log = logging.getLogger("agentcred.pods")


async def on_pod_event(deps: Deps, event_type: str, pod: Mapping[str, Any]) -> None:
    meta = pod.get("metadata") or {}
    namespace, labels = meta.get("namespace", ""), meta.get("labels") or {}
    if not deps.settings.serves(namespace):
        return
    tasks = deps.pods.tasks_selecting(namespace, labels)
    log.debug(
        "pod %s %s/%s selects %d task(s)", event_type, namespace, meta.get("name"), len(tasks)
    )
    for task in tasks:
        try:
            await lifecycle.check_pods(deps, namespace, task)
        except Exception as exc:  # one task's trouble never keeps the others' pods unseen
            metrics.count_error("pods", exc)
            log.exception("pod event for task %s/%s failed", namespace, task)
