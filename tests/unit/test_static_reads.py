"""Single-flight, short-lived cache of static secret reads."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from agentcred.backends.base import BackendNotFound, Issued
from agentcred.services.static_reads import StaticReads, read_key

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def issued(value: str) -> Issued:
    return Issued(
        data={"value": value}, lease_id=value, issued_at=T0, expires_at=None, renewable=False
    )


def test_concurrent_readers_of_one_secret_cause_one_backend_read() -> None:
    reads = StaticReads()
    calls = 0

    async def fetch() -> Issued:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return issued("v1")

    async def main() -> list[Issued]:
        return await asyncio.gather(
            *(reads.read("k", 60, fetch, backend="test") for _ in range(100))
        )

    results = asyncio.run(main())
    assert calls == 1 and reads.backend_reads == 1 and reads.hits == 99
    assert {r.data["value"] for r in results} == {"v1"}


def test_a_read_is_kept_only_for_its_window() -> None:
    clock = Clock()
    reads = StaticReads(clock)
    values = iter(["v1", "v2"])

    async def fetch() -> Issued:
        return issued(next(values))

    async def main() -> list[str]:
        first = await reads.read("k", 30, fetch, backend="test")
        clock.now = 29
        cached = await reads.read("k", 30, fetch, backend="test")
        clock.now = 31
        fresh = await reads.read("k", 30, fetch, backend="test")
        return [first.data["value"], cached.data["value"], fresh.data["value"]]

    assert asyncio.run(main()) == ["v1", "v1", "v2"]


def test_a_failed_read_reaches_every_waiter_and_is_not_cached() -> None:
    reads = StaticReads()
    attempts = 0

    async def failing() -> Issued:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise BackendNotFound("secret s not found")

    async def main() -> list[BaseException | Issued]:
        return await asyncio.gather(
            *(reads.read("k", 60, failing, backend="test") for _ in range(5)),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert all(isinstance(r, BackendNotFound) for r in results)
    assert attempts == 1 and len(reads) == 0
    with pytest.raises(BackendNotFound):
        asyncio.run(reads.read("k", 60, failing, backend="test"))
    assert attempts == 2


def test_keys_separate_namespaces_identities_and_blocks() -> None:
    block = {"secretId": "agents/llm"}
    keys = {
        read_key("team-a", "agent", "awsSecretsManager", block),
        read_key("team-b", "agent", "awsSecretsManager", block),
        read_key("team-a", "other", "awsSecretsManager", block),
        read_key("team-a", "agent", "awsSecretsManager", {"secretId": "agents/other"}),
    }
    assert len(keys) == 4
    assert read_key("team-a", "agent", "vault", {"b": 1, "a": 2}) == read_key(
        "team-a", "agent", "vault", {"a": 2, "b": 1}
    )


def test_a_slow_read_is_kept_from_when_it_was_asked_not_from_when_it_came() -> None:
    """The window ends just before the next refresh point; a read that took 2 s (a login
    first) must not outlive it, or the refresh due there gets the value from before."""
    clock = Clock()
    reads = StaticReads(clock)
    values = iter(["v1", "v2"])

    async def slow_fetch() -> Issued:
        clock.now += 2.0
        return issued(next(values))

    async def main() -> list[str]:
        first = await reads.read("k", 8.5, slow_fetch, backend="test")  # asked at 0, came at 2
        clock.now = 9.0  # the refresh point (kept until 8.5): must read afresh
        second = await reads.read("k", 9.5, slow_fetch, backend="test")
        return [first.data["value"], second.data["value"]]

    assert asyncio.run(main()) == ["v1", "v2"]
    assert reads.backend_reads == 2


def test_a_read_still_running_past_its_window_is_not_joined() -> None:
    clock = Clock()
    reads = StaticReads(clock)

    async def main() -> list[str]:
        release = asyncio.Event()

        async def held_fetch() -> Issued:
            await release.wait()
            return issued("before the point")

        async def quick_fetch() -> Issued:
            return issued("after the point")

        early = asyncio.create_task(reads.read("k", 0.4, held_fetch, backend="test"))
        await asyncio.sleep(0)  # the early read is in flight, kept until 0.4
        clock.now = 1.0  # past its window: the refresh point came while it ran
        late = await asyncio.wait_for(reads.read("k", 9.0, quick_fetch, backend="test"), 5)
        release.set()
        return [(await early).data["value"], late.data["value"]]

    assert asyncio.run(main()) == ["before the point", "after the point"]
    assert reads.backend_reads == 2
