"""Leader election decisions (agentcred.models.leadership) and the leadership loop against an
in-memory Lease with the API server's optimistic concurrency, on a fake clock.

The real thing (two replicas on a node, failover after delete and SIGKILL) is in
tests/e2e/node/test_ha.py; these pin the rules that keep two leaders from overlapping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentcred import leadership
from agentcred import settings as settings_mod
from agentcred.kube.errors import KubeConflict, KubeUnavailable
from agentcred.models.leadership import (
    LeadershipAction,
    LeadershipLease,
    claimed,
    decide,
    parse_microtime,
    released,
    renewal_lost,
)

T0 = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def held(
    by: str | None, *, duration: int = 15, transitions: int = 3, rv: str = "7"
) -> LeadershipLease:
    return LeadershipLease(
        holder=by,
        duration_seconds=duration,
        acquire_time=T0,
        renew_time=T0,
        transitions=transitions,
        resource_version=rv,
    )


def test_missing_lease_is_created_holding_it() -> None:
    assert decide("a", None, observed_at=None, now=100.0) is LeadershipAction.CREATE
    record = claimed("a", None, LeadershipAction.CREATE, duration_seconds=15, wall_now=T0)
    assert (record.holder, record.transitions, record.acquire_time) == ("a", 0, T0)


def test_own_lease_is_renewed_keeping_acquire_time_and_transitions() -> None:
    assert decide("a", held("a"), observed_at=50.0, now=100.0) is LeadershipAction.RENEW
    later = T0 + timedelta(seconds=2)
    record = claimed("a", held("a"), LeadershipAction.RENEW, duration_seconds=15, wall_now=later)
    assert (record.acquire_time, record.renew_time, record.transitions) == (T0, later, 3)
    assert record.resource_version == "7"  # written over the version read


def test_a_live_lease_of_another_replica_is_left_alone() -> None:
    assert decide("b", held("a"), observed_at=100.0, now=114.9) is LeadershipAction.WAIT


def test_an_expired_lease_is_taken_over_with_one_more_transition() -> None:
    assert decide("b", held("a"), observed_at=100.0, now=115.0) is LeadershipAction.TAKE
    record = claimed("b", held("a"), LeadershipAction.TAKE, duration_seconds=15, wall_now=T0)
    assert (record.holder, record.transitions, record.resource_version) == ("b", 4, "7")


def test_a_lease_seen_for_the_first_time_is_not_judged_expired_by_its_renew_time() -> None:
    # renewTime is hours old by the holder's clock, but we only just saw it: wait a full
    # duration by *our* clock (clock skew between nodes must not make two leaders).
    stale = replace(held("a"), renew_time=T0 - timedelta(hours=3))
    assert decide("b", stale, observed_at=None, now=100.0) is LeadershipAction.WAIT


def test_a_released_lease_is_taken_at_once() -> None:
    gone = released(held("a"), wall_now=T0)
    assert gone.holder is None
    assert decide("b", gone, observed_at=100.0, now=100.0) is LeadershipAction.TAKE


def test_the_lease_spec_round_trips_through_the_api_shape() -> None:
    record = held("a")
    body = {"metadata": {"resourceVersion": "7"}, "spec": record.spec()}
    assert LeadershipLease.from_body(body) == record
    assert record.spec()["renewTime"] == "2026-11-29T12:00:00.123456Z"
    assert parse_microtime("2026-11-29T12:00:00Z") == T0.replace(microsecond=0)
    assert released(record, wall_now=T0).spec()["holderIdentity"] is None


def test_a_leader_is_lost_when_another_holds_it_or_the_renew_deadline_passed() -> None:
    assert renewal_lost(last_renewed=0, now=1, renew_deadline=10, holder_now="b", me="a")
    assert renewal_lost(last_renewed=0, now=10, renew_deadline=10, holder_now="a", me="a")
    assert not renewal_lost(last_renewed=0, now=9.9, renew_deadline=10, holder_now="a", me="a")


def test_settings_require_nested_durations() -> None:
    config = settings_mod.load({"AGENTCRED_LEADER_ELECTION": "true"})
    assert config.leader_election
    assert config.leader_election_lease_duration == timedelta(seconds=15)
    with pytest.raises(settings_mod.SettingsError, match="RENEW_DEADLINE"):
        settings_mod.load({"AGENTCRED_LEADER_ELECTION_RENEW_DEADLINE": "20s"})


class FakeLeases:
    """One Lease with the API server's rules: create conflicts if it exists, replace
    conflicts unless written over the current resourceVersion."""

    def __init__(self) -> None:
        self.record: LeadershipLease | None = None
        self.version = 0
        self.down = False
        self.writes: list[str | None] = []

    def _check(self) -> None:
        if self.down:
            raise KubeUnavailable("Lease: API server down")

    async def read(self, api: Any, namespace: str, name: str) -> LeadershipLease | None:
        self._check()
        return self.record

    async def create(
        self, api: Any, namespace: str, name: str, rec: LeadershipLease
    ) -> LeadershipLease:
        self._check()
        if self.record is not None:
            raise KubeConflict("exists")
        return self._store(rec)

    async def replace(
        self, api: Any, namespace: str, name: str, rec: LeadershipLease
    ) -> LeadershipLease:
        self._check()
        if self.record is None or rec.resource_version != self.record.resource_version:
            raise KubeConflict("stale")
        return self._store(rec)

    def _store(self, rec: LeadershipLease) -> LeadershipLease:
        self.version += 1
        self.record = replace(rec, resource_version=str(self.version))
        self.writes.append(rec.holder)
        return self.record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def leases(monkeypatch: pytest.MonkeyPatch) -> FakeLeases:
    fake = FakeLeases()
    monkeypatch.setattr(leadership, "read_leadership_lease", fake.read)
    monkeypatch.setattr(leadership, "create_leadership_lease", fake.create)
    monkeypatch.setattr(leadership, "replace_leadership_lease", fake.replace)
    return fake


def replica(
    name: str, clock: Clock, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> leadership.Leadership:
    return leadership.Leadership(
        None,  # type: ignore[arg-type]  # the fake store needs no client
        "agentcred-system",
        "agentcred-operator",
        name,
        leadership.LeadershipTiming(lease_duration=15, renew_deadline=10, retry_period=2),
        clock=clock,
        wall=lambda: T0,
        sleep=sleep,
    )


def test_only_one_of_two_replicas_leads_until_the_lease_expires(leases: FakeLeases) -> None:
    clock = Clock()
    a, b = replica("a", clock), replica("b", clock)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()  # b saw it now: waits a full duration
        clock.now += 14.9
        assert not await b.try_acquire_or_renew()
        assert await a.try_acquire_or_renew()  # a renews: b's observation starts over
        clock.now += 14.9
        assert not await b.try_acquire_or_renew()
        clock.now += 15.1  # a silent for longer than the duration, as b sees it
        assert await b.try_acquire_or_renew()
        assert not await a.try_acquire_or_renew()  # a comes back: b leads now

    asyncio.run(scenario())
    assert leases.record is not None
    assert (leases.record.holder, leases.record.transitions) == ("b", 1)


def test_two_replicas_taking_over_at_once_yield_exactly_one_leader(leases: FakeLeases) -> None:
    clock = Clock()
    a, b = replica("a", clock), replica("b", clock)

    async def scenario() -> list[bool]:
        return list(await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew()))

    assert sorted(asyncio.run(scenario())) == [False, True]
    assert len(leases.writes) == 1


def test_a_leader_that_cannot_renew_gives_up_at_the_renew_deadline(leases: FakeLeases) -> None:
    clock = Clock()
    lost: list[str] = []

    async def fast_sleep(seconds: float) -> None:
        clock.now += seconds
        await asyncio.sleep(0)

    a = replica("a", clock, fast_sleep)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        leases.down = True
        started = clock.now
        await a.keep(on_lost=lost.append)
        assert 10 <= clock.now - started <= 12  # renew deadline, give or take one period

    asyncio.run(scenario())
    assert lost == ["renew deadline passed"]


def test_a_leader_whose_lease_was_taken_stops_at_the_next_renewal(leases: FakeLeases) -> None:
    clock = Clock()
    lost: list[str] = []

    async def paused(seconds: float) -> None:
        clock.now += seconds
        await asyncio.sleep(0)

    a, b = replica("a", clock, paused), replica("b", clock)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        clock.now += 16
        assert await b.try_acquire_or_renew()
        await a.keep(on_lost=lost.append)

    asyncio.run(scenario())
    assert lost == ["lease now held by b"]


def test_release_lets_the_standby_take_over_without_waiting(leases: FakeLeases) -> None:
    clock = Clock()
    a, b = replica("a", clock), replica("b", clock)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        await a.release()
        assert await b.try_acquire_or_renew()  # same instant: no lease duration to wait

    asyncio.run(scenario())
    assert leases.writes == ["a", None, "b"]
