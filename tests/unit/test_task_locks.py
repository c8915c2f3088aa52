"""TaskLocks (services/deps.py): one lock per task, kept only while someone holds or
waits for it, so that a step may lock before it reads (read once, under the lock)
without leaving a lock behind for a task that turned out to be gone."""

from __future__ import annotations

import asyncio

from agentcred.services.deps import TaskLocks


def test_a_lock_is_dropped_when_nobody_holds_or_waits_for_it() -> None:
    async def scenario() -> None:
        locks = TaskLocks()
        async with locks.hold("gone"):
            assert len(locks._locks) == 1
        assert locks._locks == {} and locks._users == {}

    asyncio.run(scenario())


def test_waiters_share_the_lock_and_forget_never_drops_a_held_one() -> None:
    async def scenario() -> None:
        locks = TaskLocks()
        order: list[str] = []
        release = asyncio.Event()

        async def first() -> None:
            async with locks.hold("t"):
                order.append("first in")
                await release.wait()
                order.append("first out")

        async def second() -> None:
            async with locks.hold("t"):
                order.append("second in")

        one = asyncio.create_task(first())
        await asyncio.sleep(0)
        two = asyncio.create_task(second())
        await asyncio.sleep(0)
        locks.forget("t")  # held and waited for: kept
        assert "t" in locks._locks
        release.set()
        await asyncio.gather(one, two)
        assert order == ["first in", "first out", "second in"]
        assert locks._locks == {} and locks._users == {}

    asyncio.run(scenario())
