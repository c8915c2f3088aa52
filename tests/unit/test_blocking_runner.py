"""BlockingRunner: blocking calls run in a bounded pool while the event loop stays free."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from agentcred.backends.blocking import BlockingRunner

CORRELATION: contextvars.ContextVar[str] = contextvars.ContextVar("correlation", default="")


def test_calls_run_in_the_kinds_threads_with_their_arguments() -> None:
    runner = BlockingRunner("vault", concurrency=2)
    try:
        name = asyncio.run(
            runner.run(lambda a, b=0: f"{threading.current_thread().name}:{a + b}", 1, b=2)
        )
    finally:
        runner.close()
    assert name.startswith("agentcred-vault") and name.endswith(":3")


def test_no_more_than_concurrency_calls_run_and_the_loop_stays_free() -> None:
    runner = BlockingRunner("vault", concurrency=2)
    release = threading.Event()
    lock = threading.Lock()
    running: list[int] = []
    peak = 0

    def work() -> None:
        nonlocal peak
        with lock:
            running.append(1)
            peak = max(peak, len(running))
        release.wait(10)
        with lock:
            running.pop()

    async def main() -> None:
        calls = [asyncio.create_task(runner.run(work)) for _ in range(5)]
        for _ in range(200):  # the loop keeps turning while two threads block
            if len(running) == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert len(running) == 2
        release.set()
        await asyncio.gather(*calls)

    try:
        asyncio.run(main())
    finally:
        runner.close()
    assert peak == 2


def test_context_variables_follow_the_call_into_its_thread() -> None:
    runner = BlockingRunner("vault")

    async def main() -> str:
        CORRELATION.set("cid-1")
        return await runner.run(CORRELATION.get)

    try:
        assert asyncio.run(main()) == "cid-1"
    finally:
        runner.close()


def test_errors_propagate_and_a_runner_serves_one_loop_after_another() -> None:
    runner = BlockingRunner("vault", concurrency=1)

    def fail() -> None:
        raise KeyError("boom")

    try:
        for _ in range(2):
            with pytest.raises(KeyError):
                asyncio.run(runner.run(fail))
    finally:
        runner.close()


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BlockingRunner("vault", concurrency=0)
