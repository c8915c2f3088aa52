"""Fair shares: a slow backend address or a busy namespace holds at most its own slots."""

from __future__ import annotations

import asyncio

from agentcred.services.coalesce import Coalescer
from agentcred.services.limits import Limits
from agentcred.services.lookups import Lookups


def test_a_stuck_target_cannot_take_the_slots_of_another() -> None:
    async def scenario() -> list[str]:
        limits = Limits(per_target=2, per_namespace=10)
        stuck = asyncio.Event()
        done: list[str] = []

        async def call(namespace: str, target: str, wait: bool) -> None:
            async with limits.slot(namespace, target):
                if wait:
                    await stuck.wait()
                done.append(target)

        tarpit = [asyncio.create_task(call(f"ns{i}", "tarpit", True)) for i in range(5)]
        await asyncio.sleep(0)
        await asyncio.wait_for(
            asyncio.gather(*(call(f"ns{i}", "healthy", False) for i in range(5))), 1
        )
        stuck.set()
        await asyncio.gather(*tarpit)
        assert limits.keys == 0  # idle keys are forgotten
        return done

    done = asyncio.run(scenario())
    assert done[:5] == ["healthy"] * 5


def test_a_namespace_is_bounded_across_targets() -> None:
    async def scenario() -> int:
        limits = Limits(per_target=10, per_namespace=3)
        inside, peak = 0, 0

        async def call(i: int) -> None:
            nonlocal inside, peak
            async with limits.slot("busy", f"t{i}"):
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(call(i) for i in range(12)))
        return peak

    assert asyncio.run(scenario()) == 3


def test_coalescer_runs_one_job_per_key_and_the_latest_waiting_one_after() -> None:
    async def scenario() -> list[str]:
        coalescer = Coalescer("test")
        ran: list[str] = []
        gate = asyncio.Event()

        def job(name: str, block: bool = False):  # type: ignore[no-untyped-def]
            async def run() -> None:
                if block:
                    await gate.wait()
                ran.append(name)

            return run

        coalescer.submit("k", job("first", block=True))
        for name in ("second", "third", "fourth"):  # coalesced: only the latest runs
            coalescer.submit("k", job(name))
        coalescer.submit("other", job("other"))
        await asyncio.sleep(0.01)
        gate.set()
        await coalescer.drain()
        return ran

    assert asyncio.run(scenario()) == ["other", "first", "fourth"]


def test_a_failing_job_is_counted_and_does_not_stop_the_key() -> None:
    async def scenario() -> list[str]:
        coalescer = Coalescer("test")
        ran: list[str] = []

        async def boom() -> None:
            raise RuntimeError("x")

        async def fine() -> None:
            ran.append("fine")

        coalescer.submit("k", boom)
        coalescer.submit("k", fine)
        await coalescer.drain()
        coalescer.submit("k", fine)
        await coalescer.drain()
        return ran

    assert asyncio.run(scenario()) == ["fine", "fine"]


def test_callers_queued_behind_a_stuck_target_hold_no_namespace_slot() -> None:
    async def scenario() -> None:
        limits = Limits(per_target=1, per_namespace=2)
        stuck = asyncio.Event()

        async def call(target: str, wait: bool) -> None:
            async with limits.slot("team", target):
                if wait:
                    await stuck.wait()

        queued = [asyncio.create_task(call("tarpit", True)) for _ in range(5)]
        await asyncio.sleep(0)
        await asyncio.wait_for(call("healthy", False), 1)  # same namespace, other target
        stuck.set()
        await asyncio.gather(*queued)

    asyncio.run(scenario())


def test_lookups_share_one_read_per_key_and_expire() -> None:
    async def scenario() -> tuple[int, int]:
        now = [0.0]
        lookups, reads = Lookups(keep=2.0, clock=lambda: now[0]), 0

        async def fetch() -> str:
            nonlocal reads
            reads += 1
            await asyncio.sleep(0.01)
            return "backend"

        values = await asyncio.gather(*(lookups.get(("backend", "k"), fetch) for _ in range(20)))
        assert set(values) == {"backend"}
        burst = reads
        now[0] = 1.0
        await lookups.get(("backend", "k"), fetch)  # still fresh
        now[0] = 2.5
        await lookups.get(("backend", "k"), fetch)  # expired: read again
        return burst, reads

    assert asyncio.run(scenario()) == (1, 2)
