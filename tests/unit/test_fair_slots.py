"""FairSlots: a namespace alone uses every slot; while others wait, slots go round-robin,
each namespace capped at its share; cancellation never loses or invents a slot."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from agentcred.services import lifecycle, pod_events
from agentcred.services.coalesce import Coalescer
from agentcred.services.deps import POD_WORKERS, Deps
from agentcred.services.fair_slots import FairSlots
from agentcred.services.limits import Limits
from agentcred.services.scheduler import Scheduler, TaskKey
from agentcred.settings import Settings, SettingsError, load

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), 5)  # a deadlock fails, not hangs

    return asyncio.run(bounded())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Holders:
    """Callers that take a slot and hold it until told to go (in grant order)."""

    def __init__(self, slots: FairSlots) -> None:
        self.slots = slots
        self.granted: list[str] = []
        self._go: dict[int, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, key: str, count: int = 1) -> list[asyncio.Task[None]]:
        started = []
        for _ in range(count):
            go = asyncio.Event()
            task = asyncio.create_task(self._hold(key, go))
            self._go[id(task)] = go
            started.append(task)
        self.tasks += started
        return started

    async def _hold(self, key: str, go: asyncio.Event) -> None:
        async with self.slots.hold(key):
            self.granted.append(key)
            await go.wait()

    def finish(self, task: asyncio.Task[None]) -> None:
        self._go[id(task)].set()

    async def finish_all(self) -> None:
        for go in self._go.values():
            go.set()
        await asyncio.gather(*self.tasks)


def test_alone_a_namespace_takes_every_slot() -> None:
    async def scenario() -> None:
        slots = FairSlots(8, share=0.25)
        holders = Holders(slots)
        holders.start("burst", 8)
        await settle()
        assert slots.held("burst") == 8  # the share caps nothing while nobody else waits
        assert slots.waiting == 0
        holders.start("burst", 3)
        await settle()
        assert slots.waiting == 3
        await holders.finish_all()
        assert slots.idle

    run(scenario)


def test_a_newcomer_gets_the_next_free_slot_ahead_of_a_queued_burst() -> None:
    async def scenario() -> None:
        slots = FairSlots(4, share=0.5)
        holders = Holders(slots)
        first = holders.start("flood", 4)
        holders.start("flood", 100)  # queued first
        await settle()
        holders.start("victim")  # arrives after the whole flood is queued
        await settle()
        holders.finish(first[0])
        await settle()
        assert holders.granted[4:] == ["victim"]
        await holders.finish_all()
        assert slots.idle

    run(scenario)


def test_two_waiting_namespaces_take_turns() -> None:
    async def scenario() -> list[str]:
        slots = FairSlots(1)
        holders = Holders(slots)
        head = holders.start("a")
        holders.start("a", 3)
        holders.start("b", 3)
        await settle()
        holders.finish(head[0])
        for task in holders.tasks[1:]:
            await settle()
            holders.finish(task)
        await holders.finish_all()
        return holders.granted

    assert run(scenario) == ["a", "b", "a", "b", "a", "b", "a"]


def test_a_namespace_over_its_share_gives_way_until_the_other_has_its_share() -> None:
    async def scenario(share: float) -> tuple[int, int, list[str]]:
        slots = FairSlots(8, share)
        holders = Holders(slots)
        flood = holders.start("flood", 8)
        holders.start("flood", 20)
        holders.start("other", 20)
        await settle()
        for task in flood[:4]:  # the flood's first calls finish one by one
            holders.finish(task)
            await settle()
        held = slots.held("flood"), slots.held("other")
        await holders.finish_all()
        assert slots.idle
        return *held, holders.granted[8:12]

    # capped at half: every slot freed goes to the namespace under its share
    assert run(lambda: scenario(0.5)) == (4, 4, ["other"] * 4)
    # share 1 (no cap): plain round-robin, the flood keeps most of what it took alone
    assert run(lambda: scenario(1.0)) == (6, 2, ["other", "flood"] * 2)


def test_when_every_waiting_namespace_holds_its_share_no_slot_stays_idle() -> None:
    async def scenario() -> None:
        slots = FairSlots(4, share=0.25)
        holders = Holders(slots)
        a = holders.start("a", 2)
        b = holders.start("b", 2)
        holders.start("a", 1)
        holders.start("b", 1)
        await settle()
        holders.finish(a[0])
        await settle()
        # both waiting namespaces hold more than their share (1): served anyway, in turn
        assert holders.granted[4:] == ["a"]
        holders.finish(b[0])
        await settle()
        assert holders.granted[5:] == ["b"]
        assert slots.waiting == 0
        await holders.finish_all()

    run(scenario)


def test_a_cancelled_waiter_releases_nothing_it_does_not_hold() -> None:
    async def scenario() -> None:
        slots = FairSlots(2)
        holders = Holders(slots)
        running = holders.start("a", 2)
        waiter = asyncio.create_task(slots.acquire("b"))
        await settle()
        waiter.cancel()
        await settle()
        assert waiter.cancelled()
        assert (slots.held("a"), slots.held("b"), slots.waiting) == (2, 0, 0)
        late = holders.start("c")  # the cancelled waiter did not free or keep a slot
        await settle()
        assert slots.held("c") == 0 and slots.waiting == 1
        holders.finish(running[0])
        await settle()
        assert slots.held("c") == 1 and late[0] is not None
        with pytest.raises(RuntimeError):
            slots.release("b")  # it never held one
        await holders.finish_all()
        assert slots.idle

    run(scenario)


def test_a_waiter_cancelled_after_its_grant_passes_the_slot_on() -> None:
    async def scenario() -> None:
        slots = FairSlots(1)
        slots_taken = asyncio.create_task(slots.acquire("a"))
        await settle()
        assert slots_taken.done()
        granted_then_cancelled = asyncio.create_task(slots.acquire("b"))
        after = asyncio.create_task(slots.acquire("c"))
        await settle()
        slots.release("a")  # grants b's waiter; b is cancelled before it runs
        granted_then_cancelled.cancel()
        await settle()
        assert granted_then_cancelled.cancelled()
        assert after.done() and slots.held("c") == 1 and slots.held("b") == 0
        slots.release("c")
        assert slots.idle

    run(scenario)


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        FairSlots(0)
    for share in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError):
            FairSlots(4, share)
    assert FairSlots(3, 0.1).cap == 1  # a namespace always has at least one slot


def test_random_interleavings_never_lose_or_invent_a_slot() -> None:
    async def scenario() -> None:
        rng = random.Random(18)
        slots = FairSlots(5, share=0.4)
        inside = 0
        peak = 0

        async def call(key: str) -> None:
            nonlocal inside, peak
            async with slots.hold(key):
                inside += 1
                peak = max(peak, inside)
                assert inside <= 5
                try:
                    for _ in range(rng.randint(0, 3)):
                        await asyncio.sleep(0)
                finally:
                    inside -= 1

        tasks = [asyncio.create_task(call(f"ns{rng.randint(0, 3)}")) for _ in range(300)]
        await settle()
        for task in rng.sample(tasks, 60):
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert not [r for r in results if isinstance(r, AssertionError)]
        assert slots.idle and slots.waiting == 0 and peak == 5

    run(scenario)


# -- users: Limits (target then namespace), the scheduler, the pod queue, settings --------


def test_limits_hand_a_shared_target_to_a_second_namespace_first() -> None:
    async def scenario() -> list[str]:
        limits = Limits(per_target=2, per_namespace=100, share=0.5)
        go = asyncio.Event()
        order: list[str] = []

        async def call(namespace: str) -> None:
            async with limits.slot(namespace, "vault"):
                order.append(namespace)
                await go.wait()

        flood = [asyncio.create_task(call("flood")) for _ in range(50)]
        await settle()
        victim = asyncio.create_task(call("victim"))
        await settle()
        go.set()
        await asyncio.gather(*flood, victim)
        assert limits.keys == 0
        return order

    order = run(scenario)
    assert order.index("victim") == 2  # the first slot that freed


def test_limits_target_then_namespace_never_deadlock() -> None:
    async def scenario() -> None:
        limits = Limits(per_target=2, per_namespace=2, share=0.5)
        rng = random.Random(4)

        async def call(namespace: str, target: str) -> None:
            async with limits.slot(namespace, target):
                for _ in range(rng.randint(0, 2)):
                    await asyncio.sleep(0)

        await asyncio.gather(
            *(call(f"ns{rng.randint(0, 2)}", f"t{rng.randint(0, 2)}") for _ in range(400))
        )
        assert limits.keys == 0

    run(scenario)


def test_the_scheduler_runs_another_namespace_s_step_before_a_queued_flood() -> None:
    async def scenario() -> list[str]:
        scheduler = Scheduler(parallel=2, share=0.5)
        stopped = asyncio.Event()
        release, all_ran = asyncio.Event(), asyncio.Event()
        order: list[str] = []

        async def step(key: TaskKey, attempt: int) -> float | None:
            order.append(key.namespace)
            if len(order) == 41:
                all_ran.set()
            await release.wait()
            return None

        for i in range(40):
            scheduler.schedule(TaskKey(f"f{i}", "flood", f"f{i}"), 0)
        runner = asyncio.create_task(scheduler.run(step, stopped))
        await settle()
        scheduler.schedule(TaskKey("v", "victim", "v"), 0)
        await settle()
        release.set()
        await all_ran.wait()
        stopped.set()
        await runner
        return order

    order = run(scenario)
    assert order.index("victim") == 2


def test_pod_checks_coalesce_per_task_and_serve_namespaces_in_turn() -> None:
    async def scenario() -> list[str]:
        coalescer = Coalescer("pods", FairSlots(1))
        gate = asyncio.Event()
        ran: list[str] = []

        def job(name: str, block: bool = False) -> Callable[[], Awaitable[None]]:
            async def go() -> None:
                if block:
                    await gate.wait()
                ran.append(name)

            return go

        coalescer.submit(("flood", "t0"), job("t0", block=True), group="flood")
        await settle()
        for i in range(1, 30):
            for _ in range(5):  # a churning pod: five events for one task
                coalescer.submit(("flood", f"t{i}"), job(f"t{i}"), group="flood")
        coalescer.submit(("victim", "v"), job("v"), group="victim")
        await settle()
        gate.set()
        await coalescer.drain()
        return ran

    ran = run(scenario)
    assert ran[:2] == ["t0", "v"]
    assert len(ran) == 31  # one run per task, however many events


def test_namespace_share_setting() -> None:
    assert load({}).namespace_share == 0.5
    assert load({"AGENTCRED_NAMESPACE_SHARE": "0.25"}).namespace_share == 0.25
    assert load({"AGENTCRED_NAMESPACE_SHARE": "1"}).namespace_share == 1.0
    for bad in ("0", "1.5", "half", "nan"):
        with pytest.raises(SettingsError, match="AGENTCRED_NAMESPACE_SHARE"):
            load({"AGENTCRED_NAMESPACE_SHARE": bad})


def test_the_pod_watch_queues_checks_and_never_waits_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Index:
        def tasks_selecting(self, namespace: str, labels: dict[str, str]) -> list[str]:
            return [f"{namespace}-task-{labels['n']}"]

    async def scenario() -> tuple[list[tuple[str, str]], int]:
        deps = Deps(api=None, backends=None, settings=Settings())  # type: ignore[arg-type]
        deps.pods = Index()  # type: ignore[assignment]
        release = asyncio.Event()
        checked: list[tuple[str, str]] = []

        async def check_pods(deps: Deps, namespace: str, name: str) -> None:
            checked.append((namespace, name))
            await release.wait()

        monkeypatch.setattr(lifecycle, "check_pods", check_pods)

        def event(namespace: str, n: int) -> None:
            pod = {"metadata": {"namespace": namespace, "name": "p", "labels": {"n": str(n)}}}
            assert pod_events.on_pod_event(deps, "MODIFIED", pod) is None  # not awaited

        for n in range(20):  # a flood: 20 tasks, each of whose pods churns 5 times
            for _ in range(5):
                event("flood", n)
        event("victim", 0)
        await settle()
        running = len(checked)
        release.set()
        await deps.pod_checks.drain()
        return checked, running

    checked, running = run(scenario)
    assert running == POD_WORKERS  # bounded
    assert ("victim", "victim-task-0") in checked[: POD_WORKERS + 1]  # the next free worker
    assert len(checked) == 20 + 1  # one run per task, however many events it had


def test_headroom_lets_a_newcomer_start_while_a_burst_holds_the_rest() -> None:
    async def scenario() -> None:
        slots = FairSlots(8, share=0.5, headroom=2)
        holders = Holders(slots)
        holders.start("burst", 10)
        await settle()
        assert slots.held("burst") == 6  # alone, it leaves the headroom free
        assert slots.waiting == 4
        holders.start("quiet", 1)
        await settle()
        assert slots.held("quiet") == 1  # at once: no slot of the burst had to end
        holders.start("quiet", 1)
        await settle()
        assert slots.held("quiet") == 1  # holding one, it waits like anyone else
        holders.finish(holders.tasks[0])
        await settle()
        assert slots.held("quiet") == 1  # the two free slots are the headroom
        holders.finish(holders.tasks[1])
        await settle()
        assert slots.held("quiet") == 2  # the next one beyond it: its fair turn first
        assert slots.held("burst") == 4
        await holders.finish_all()
        assert slots.idle

    asyncio.run(scenario())


def test_no_headroom_means_a_newcomer_waits_for_a_burst_slot_to_end() -> None:
    async def scenario() -> None:
        slots = FairSlots(8, share=0.5)
        holders = Holders(slots)
        holders.start("burst", 10)
        holders.start("quiet", 1)
        await settle()
        assert slots.held("burst") == 8 and slots.held("quiet") == 0
        await holders.finish_all()

    asyncio.run(scenario())


def test_headroom_must_leave_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="headroom"):
        FairSlots(4, headroom=4)
