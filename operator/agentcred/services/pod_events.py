"""React to pod events: re-assess the tasks whose podSelector selects the pod."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcred.services import lifecycle
from agentcred.services.deps import Deps


async def on_pod_event(deps: Deps, event_type: str, pod: Mapping[str, Any]) -> None:
    meta = pod.get("metadata") or {}
    namespace, labels = meta.get("namespace", ""), meta.get("labels") or {}
    for task in deps.pods.tasks_selecting(namespace, labels):
        await lifecycle.check_pods(deps, namespace, task)
