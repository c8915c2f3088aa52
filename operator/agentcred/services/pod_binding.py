"""Tie a task's life to its pods: once a selected pod has existed and all are finished
or gone, the task ends (Succeeded only if every finished pod succeeded).

What the operator has seen is kept in ``status.pods`` (uids), so the verdict survives
restarts and pods that vanish while the operator is down still count as deleted.
The decision itself is pure; ``assess`` lists the pods and decides, the lifecycle
module applies the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentcred.kube import resources
from agentcred.kube.selectors import selector_string
from agentcred.models.api_names import Reason
from agentcred.models.selectors import matches
from agentcred.models.status import Phase, PodRecord
from agentcred.models.task import LabelSelector
from agentcred.services.task_view import TaskView

if TYPE_CHECKING:
    from agentcred.services.deps import Deps

CAP = 256
FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Pod:
    uid: str
    name: str
    phase: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Pod:
        meta = body.get("metadata") or {}
        return cls(
            uid=meta.get("uid", ""),
            name=meta.get("name", ""),
            phase=(body.get("status") or {}).get("phase", "Pending"),
        )


def _add(uids: list[str], new: Iterable[str]) -> list[str]:
    merged = list(dict.fromkeys([*uids, *new]))
    return merged[-CAP:]


def observe(old: Mapping[str, Any], pods: Iterable[Pod]) -> PodRecord:
    pods = list(pods)
    return PodRecord(
        seen=_add(list(old.get("seen") or []), (p.uid for p in pods)),
        succeeded=_add(
            list(old.get("succeeded") or []), (p.uid for p in pods if p.phase == "Succeeded")
        ),
        failed=_add(list(old.get("failed") or []), (p.uid for p in pods if p.phase == "Failed")),
    )


def verdict(record: PodRecord, present: Iterable[Pod]) -> tuple[Phase, str, str] | None:
    """The task's end, if its pods say so: (phase, reason, message) or None."""
    present = list(present)
    seen = record.get("seen") or []
    if not seen or any(p.phase not in FINISHED for p in present):
        return None
    if record.get("failed"):
        return Phase.FAILED, Reason.POD_FAILED, "a selected pod failed"
    finished = set(record.get("succeeded") or [])
    gone = [uid for uid in seen if uid not in finished and uid not in {p.uid for p in present}]
    if gone:
        return (
            Phase.FAILED,
            Reason.PODS_DELETED,
            f"{len(gone)} selected pod(s) deleted before finishing",
        )
    return Phase.SUCCEEDED, Reason.PODS_SUCCEEDED, "all selected pods succeeded"


async def assess(
    deps: Deps, task: TaskView
) -> tuple[PodRecord | None, tuple[Phase, str, str] | None]:
    """List the task's pods: (the updated record if it changed, the task's end if due)."""
    selector = task.spec.pod_selector
    if selector is None:
        return None, None
    bodies = await resources.list_pods(deps.api, task.namespace, selector_string(selector))
    pods = [
        Pod.from_body(b) for b in bodies if not (b.get("metadata") or {}).get("deletionTimestamp")
    ]
    old = task.status.get("pods") or {}
    record = observe(old, pods)
    unchanged = all(
        record.get(k) == list(old.get(k) or []) for k in ("seen", "succeeded", "failed")
    )
    return (None if unchanged else record), verdict(record, pods)


class PodIndex:
    """Which tasks select pods in a namespace (rebuilt from the tasks as they are handled)."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, dict[str, tuple[str, LabelSelector]]] = {}

    def register(self, task: TaskView) -> None:
        if task.spec.pod_selector is not None:
            self._by_namespace.setdefault(task.namespace, {})[task.uid] = (
                task.name,
                task.spec.pod_selector,
            )

    def unregister(self, namespace: str, uid: str) -> None:
        self._by_namespace.get(namespace, {}).pop(uid, None)

    def uid_of(self, namespace: str, name: str) -> str | None:
        """The uid of the registered task of that name (to lock it before reading it)."""
        for uid, (registered, _) in self._by_namespace.get(namespace, {}).items():
            if registered == name:
                return uid
        return None

    def tasks_selecting(self, namespace: str, labels: Mapping[str, str]) -> list[str]:
        return [
            name
            for name, selector in self._by_namespace.get(namespace, {}).values()
            if matches(selector, labels)
        ]

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_namespace.values())
