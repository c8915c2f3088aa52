"""The one scheduler: due order, one step per task at a time, wakes, failures, bounds;
and the pure plan of when a task needs its next step (a fake clock, no cluster)."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from agentcred.services.due import IDLE, initial_delay, next_due
from agentcred.services.scheduler import Scheduler, TaskKey
from agentcred.services.task_view import TaskView

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)


def key(name: str) -> TaskKey:
    return TaskKey(uid=f"uid-{name}", namespace="ns", name=name)


async def run_for(scheduler: Scheduler, step: Any, seconds: float) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run(step, stop))
    await asyncio.sleep(seconds)
    stop.set()
    await runner


def test_steps_run_in_due_order_and_follow_the_delay_they_return() -> None:
    async def scenario() -> list[str]:
        scheduler, ran = Scheduler(), []

        async def step(k: TaskKey, attempt: int) -> float | None:
            ran.append(k.name)
            return 0.05 if k.name == "again" and ran.count("again") < 3 else None

        scheduler.schedule(key("late"), 0.15)
        scheduler.schedule(key("again"), 0.0)
        scheduler.schedule(key("early"), 0.02)
        await run_for(scheduler, step, 0.4)
        assert len(scheduler) == 0  # None: forgotten
        return ran

    assert asyncio.run(scenario()) == ["again", "early", "again", "again", "late"]


def test_a_task_never_runs_twice_at_once_and_a_wake_while_running_runs_it_after() -> None:
    async def scenario() -> tuple[int, int]:
        scheduler = Scheduler()
        inside, peak, runs = 0, 0, 0

        async def step(k: TaskKey, attempt: int) -> float | None:
            nonlocal inside, peak, runs
            inside, runs = inside + 1, runs + 1
            peak = max(peak, inside)
            if runs == 1:
                for _ in range(3):
                    scheduler.wake(k)  # status changed meanwhile: once more, after
            await asyncio.sleep(0.02)
            inside -= 1
            return None

        scheduler.wake(key("t"))
        await run_for(scheduler, step, 0.3)
        return peak, runs

    assert asyncio.run(scenario()) == (1, 2)


def test_a_failing_step_is_retried_later_and_never_stops_the_others() -> None:
    async def scenario() -> tuple[list[str], float | None]:
        scheduler, ran = Scheduler(), []

        async def step(k: TaskKey, attempt: int) -> float | None:
            ran.append(k.name)
            if k.name == "bad":
                raise RuntimeError("boom")
            return None

        scheduler.wake(key("bad"))
        scheduler.schedule(key("good"), 0.02)
        await run_for(scheduler, step, 0.15)
        return ran, scheduler.due_in("uid-bad")

    ran, retry_in = asyncio.run(scenario())
    assert ran == ["bad", "good"]
    assert retry_in is not None and 25 < retry_in <= 30


def test_parallel_steps_are_bounded() -> None:
    async def scenario() -> int:
        scheduler, inside, peak = Scheduler(parallel=3), 0, 0

        async def step(k: TaskKey, attempt: int) -> float | None:
            nonlocal inside, peak
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.02)
            inside -= 1
            return None

        for i in range(10):
            scheduler.wake(key(str(i)))
        await run_for(scheduler, step, 0.3)
        return peak

    assert asyncio.run(scenario()) == 3


def task(phase: str | None, entries: list[dict[str, Any]], **spec: Any) -> TaskView:
    body = {
        "metadata": {
            "namespace": "ns",
            "name": "t",
            "uid": "u",
            "creationTimestamp": "2026-11-29T11:00:00Z",
        },
        "spec": {"credentials": [{"name": "db"}], **spec},
        "status": {"phase": phase, "credentials": entries} if phase else {},
    }
    return TaskView.from_body(body)


def stamp(minutes: float) -> str:
    return (NOW + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_next_step_is_the_earliest_moment_in_status() -> None:
    entry = {"name": "db", "state": "Issued", "renewAt": stamp(10), "expiresAt": stamp(15)}
    active = task("Active", [entry])
    assert next_due(active) == NOW + datetime.timedelta(minutes=10)
    assert initial_delay(active, NOW) == 600
    with_deadline = task("Active", [entry], activeDeadlineSeconds=3600 + 5 * 60)
    assert initial_delay(with_deadline, NOW) == 300  # created 11:00, deadline 12:05
    overdue = task("Active", [{**entry, "renewAt": stamp(-1)}])
    assert initial_delay(overdue, NOW) == 0
    assert initial_delay(task("Active", [{"name": "db", "state": "Revoked"}]), NOW) == IDLE


def test_ended_and_pending_tasks_at_start() -> None:
    issued = {"name": "db", "state": "Issued", "renewAt": stamp(10)}
    assert initial_delay(task("Succeeded", [issued]), NOW) == 0  # revoke what is left
    assert initial_delay(task("Succeeded", [{**issued, "state": "Revoked"}]), NOW) is None
    assert initial_delay(task("Pending", [issued]), NOW) == 0  # lost a credential: re-issue
    assert initial_delay(task("Pending", []), NOW) is None  # first issue: the create handler's


def test_a_cancelled_run_leaves_no_task_behind() -> None:
    """At shutdown the cleanup handler sets the stop event and cancels the run; a waiter
    left pending would hold Kopf's exit for its 5 s grace on hung tasks (every operator
    stop, every test operator, every leader handing over)."""

    async def scenario() -> set[asyncio.Task[Any]]:
        async def step(k: TaskKey, attempt: int) -> float | None:
            return None

        stop = asyncio.Event()
        runner = asyncio.create_task(Scheduler().run(step, stop))
        for _ in range(3):  # into its wait for work
            await asyncio.sleep(0)
        stop.set()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await asyncio.sleep(0)
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}

    assert asyncio.run(scenario()) == set()
