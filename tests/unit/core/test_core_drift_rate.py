"""Drift repair's rate limit, on the fake clock: a credential is re-issued at most once per
30 s however often its Secret is deleted or edited (services/drift._rate_limit_wait,
AGENTCRED_RESTORE_INTERVAL).

These were end-to-end tests that waited the 30 s in real time (the storm test in
tests/e2e/hardening, the second restore of the lifecycle drift test); the real server's
part (a deleted Secret noticed by the watch, restored, the exposed credential revoked in
PostgreSQL) stays in tests/e2e/lifecycle/test_issue_and_complete.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from agentcred.services import drift
from agentcred.settings import Settings
from support.harness import Harness, play
from support.harness.objects import world

INTERVAL = Settings().restore_interval.total_seconds()  # the default: 30 s
SHORT = datetime.timedelta(seconds=2)  # AGENTCRED_RESTORE_INTERVAL=2s


class Waits:
    """The drift check's rate-limit waits, on the harness clock instead of real time."""

    def __init__(self) -> None:
        self.harness: Harness | None = None
        self.waited: list[float] = []


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Waits]:
    real_sleep = asyncio.sleep
    found = Waits()

    async def on_the_clock(delay: float, result: Any = None) -> Any:
        if delay >= 1 and found.harness is not None:  # the rate limit's wait, not a yield
            found.waited.append(delay)
            found.harness.clock.advance(delay)
            delay = 0
        return await real_sleep(delay, result)

    monkeypatch.setattr(drift.asyncio, "sleep", on_the_clock)
    yield found


def issued_at(h: Harness) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(h.entry()["issuedAt"]).replace("Z", "+00:00"))


async def delete_secret(h: Harness) -> None:
    gone = h.server.remove("secrets", "team-a", "t1-db")
    await drift.on_secret_event(h.deps, "DELETED", gone)


def test_deleting_the_secret_again_and_again_reissues_at_most_once_per_30_seconds(
    waits: Waits,
) -> None:
    async def scenario(h: Harness) -> None:
        waits.harness = h
        await h.start()
        issued = [issued_at(h)]
        for _ in range(2):  # at once after an issue: each restore waits out the interval
            await delete_secret(h)
            await h.deps.drift.drain()
            assert h.secret_data("team-a", "t1-db") is not None, "the Secret restored"
            issued.append(issued_at(h))
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(issued)]
        assert all(gap >= INTERVAL for gap in gaps), gaps
        assert waits.waited == [pytest.approx(INTERVAL, abs=1)] * 2
        assert h.entry()["reissues"] == 2
        issues = [c for c in h.backends["vault"].take() if c[0] == "issue"]
        assert len(issues) == 3  # the task's own issue and one per restore

    play(Harness(world()), scenario)


def test_a_storm_of_deletions_during_the_wait_costs_at_most_two_restores(waits: Waits) -> None:
    async def scenario(h: Harness) -> None:
        waits.harness = h
        await h.start()
        h.backends["vault"].take()
        gone = h.server.remove("secrets", "team-a", "t1-db")
        for _ in range(10):  # the watch delivers the same deletion many times: they coalesce
            await drift.on_secret_event(h.deps, "DELETED", gone)
        await h.deps.drift.drain()
        issues = [c for c in h.backends["vault"].take() if c[0] == "issue"]
        assert 1 <= len(issues) <= 2, issues
        assert len(waits.waited) == len(issues), "every restore waited out the interval"
        assert all(w >= INTERVAL - 1 for w in waits.waited), waits.waited
        assert h.entry()["reissues"] == len(issues)
        assert h.secret_data("team-a", "t1-db") is not None

    play(Harness(world()), scenario)


def test_the_interval_is_the_operators_setting(waits: Waits) -> None:
    async def scenario(h: Harness) -> None:
        waits.harness = h
        h.deps.settings = dataclasses.replace(h.deps.settings, restore_interval=SHORT)
        await h.start()
        await delete_secret(h)
        await h.deps.drift.drain()
        assert waits.waited == [pytest.approx(SHORT.total_seconds(), abs=0.5)]
        assert h.entry()["reissues"] == 1

    play(Harness(world()), scenario)


def test_an_edit_long_after_the_issue_is_restored_without_waiting(waits: Waits) -> None:
    async def scenario(h: Harness) -> None:
        waits.harness = h
        await h.start()
        h.clock.advance(INTERVAL + 1)
        edited = h.edit_secret("team-a", "t1-db", {"password": "tampered-value"})
        await h.secret_changed(edited)
        assert waits.waited == []
        assert h.secret_data("team-a", "t1-db") != {"password": "tampered-value"}
        assert h.entry()["reissues"] == 1

    play(Harness(world()), scenario)
