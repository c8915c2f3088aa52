"""What the operator's own structures hold per active task (issue 22: 20,000 tasks in
one replica).

N tasks on one shared static secret (AWS Secrets Manager: the cheapest credential) are
started, then a new process (``Harness.restart``) seeds drift detection from their
statuses and resumes each as Kopf's initial list would. Each time, every object
reachable from ``Deps`` (the API client and the backends aside: they are shared, not
per task) is counted with ``sys.getsizeof``, per field of ``Deps``: the scheduler, the
written versions, the active set, the locks, the caches. Kopf's own per-object memory
is outside ``Deps`` and measured by ``make bench ARGS="--scenarios scale"``.

The budget is a regression guard, not a timing: a change that keeps a task body, a
Secret, a coroutine or a lock per task fails it.
``python -m pytest tests/unit/core/test_core_memory_per_task.py -s`` prints the holders
(docs/performance.md, "20,000 tasks in one replica").
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from collections import Counter
from typing import Any

from agentcred.services import drift
from agentcred.services.deps import Deps
from support.harness import Harness, StaticSecret, play
from support.harness.objects import (
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    service_account,
)

TASKS = 300
SHARED = ("api", "backends", "settings", "clock", "rng")  # not per task
# Bytes reachable from Deps per active task: a body (3 KB), a Secret or a coroutine
# per task fails this.
BUDGET = 1024


def _world(count: int) -> list[dict[str, object]]:
    tasks = [agent_task(f"task-{i:05d}", credentials=("sm",)) for i in range(count)]
    return [
        namespace(),
        service_account(),
        credential_backend(kind="awsSecretsManager"),
        agent_credential("sm", request="awsSecretsManager", ttl="1h", refreshInterval="1h"),
        *tasks,
    ]


def reachable_bytes(root: object, seen: set[int]) -> int:
    """``sys.getsizeof`` of every object reachable from ``root`` not ``seen`` before
    (modules, types and functions are shared code, not held data)."""
    total, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | type(sys) | type(reachable_bytes)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def holders(deps: Deps) -> Counter[str]:
    """Bytes reachable from each field of ``deps`` (shared clients and settings aside)."""
    gc.collect()
    seen = {id(getattr(deps, name)) for name in SHARED}
    seen.add(id(deps))
    sizes: Counter[str] = Counter()
    for field in dataclasses.fields(deps):
        if field.name not in SHARED:
            sizes[field.name] = reachable_bytes(getattr(deps, field.name), seen)
    return sizes


async def _measure(h: Harness) -> dict[str, Counter[str]]:
    names = [f"task-{i:05d}" for i in range(TASKS)]
    empty = holders(h.deps)
    for name in names:
        await h.start(name)
    issued = holders(h.deps)
    h.restart()  # a new process: fresh Deps, the same cluster
    fresh = holders(h.deps)
    await drift.seed(h.deps, None)
    for name in names:
        await h.resume(name)
    resumed = holders(h.deps)
    issued.subtract(empty)
    resumed.subtract(fresh)
    return {"issued": issued, "resumed": resumed}


def _report(what: str, kept: Counter[str]) -> int:
    per_task = sum(kept.values()) // TASKS
    print(f"\n{what}: {per_task} bytes per active task reachable from Deps")
    for where, size in kept.most_common(8):
        if size > 0:
            print(f"  {size / TASKS:8.0f} B/task  deps.{where}")
    return per_task


def test_an_active_task_costs_the_operator_a_small_record_not_a_body() -> None:
    result: dict[str, Any] = play(
        Harness(_world(TASKS), {"awsSecretsManager": StaticSecret()}), _measure
    )
    issued = _report("issued in this process", result["issued"])
    resumed = _report("resumed by a restarted process", result["resumed"])
    assert resumed <= BUDGET, result["resumed"].most_common(5)
    assert issued <= BUDGET, result["issued"].most_common(5)
