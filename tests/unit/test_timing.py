"""Renewal schedule with jitter, TTL capping by the deadline, backoff."""

from __future__ import annotations

import datetime
import random

import pytest

from agentcred.services.timing import (
    backoff,
    capped_ttl,
    earliest,
    renew_at,
    shared_refresh_at,
    shared_refresh_point,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


@pytest.mark.parametrize("seed", range(50))
def test_renewal_lands_at_the_percent_minus_at_most_ten_percent_jitter(seed: int) -> None:
    at = renew_at(T0, T0 + HOUR, 67, random.Random(seed))
    assert T0 + HOUR * 0.57 <= at <= T0 + HOUR * 0.67


def test_jitter_spreads_renewals_of_leases_issued_together() -> None:
    rng = random.Random(1)
    moments = {renew_at(T0, T0 + HOUR, 67, rng) for _ in range(100)}
    assert len(moments) > 90


def test_renewal_never_later_than_a_margin_before_expiry() -> None:
    at = renew_at(T0, T0 + datetime.timedelta(seconds=10), 99, random.Random(0))
    assert at <= T0 + datetime.timedelta(seconds=8)


def test_renewal_of_an_already_short_lease_is_not_before_issue() -> None:
    assert renew_at(T0, T0 + datetime.timedelta(seconds=1), 50, random.Random(0)) >= T0


def test_a_shared_refresh_is_after_the_next_grid_point_and_within_1_1_intervals() -> None:
    interval = datetime.timedelta(minutes=5)
    for seed in range(40):
        now = T0 + datetime.timedelta(seconds=seed * 37)
        point = shared_refresh_point(now, interval, "key")
        at = shared_refresh_at(now, interval, "key", random.Random(seed))
        assert now < point <= at <= point + interval * 0.1
        assert at <= now + interval * 1.1
        # the grid: the point after `point` is one interval later
        assert shared_refresh_point(point, interval, "key") == point + interval


def test_tasks_sharing_a_secret_refresh_in_one_window_whenever_they_started() -> None:
    interval = datetime.timedelta(seconds=30)
    starts = [T0 + datetime.timedelta(seconds=s) for s in (0, 7, 14.5, 22, 29.9)]
    times = [shared_refresh_at(t, interval, "k", random.Random(i)) for i, t in enumerate(starts)]
    # one window per interval: the first reads, the others are served that read
    windows = {round((t - min(times)) / interval) for t in times}
    assert windows <= {0, 1}
    first_window = sorted(t for t in times if t - min(times) < interval / 2)
    assert first_window[-1] - first_window[0] <= interval * 0.1
    # and the next refresh of each lands in the same next window again
    again = [shared_refresh_at(t, interval, "k", random.Random(9)) for t in first_window]
    assert max(again) - min(again) <= interval * 0.1


def test_different_secrets_refresh_at_different_phases() -> None:
    interval = datetime.timedelta(minutes=10)
    rng = random.Random(0)
    phases = {
        shared_refresh_at(T0, interval, f"secret-{i}", rng).replace(microsecond=0)
        for i in range(20)
    }
    assert len(phases) > 10


def test_ttl_is_capped_by_the_remaining_deadline() -> None:
    ttl = datetime.timedelta(minutes=15)
    assert capped_ttl(ttl, T0, None) == ttl
    assert capped_ttl(ttl, T0, T0 + datetime.timedelta(minutes=5)) == datetime.timedelta(minutes=5)
    assert capped_ttl(ttl, T0, T0 - HOUR) == datetime.timedelta(seconds=1)


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    rng = random.Random(3)
    for attempt in range(30):
        delay = backoff(attempt, rng, base=1, cap=300)
        assert 0.5 <= delay <= min(300, 2**attempt)
    defaults = [backoff(10, random.Random(s)) for s in range(100)]
    assert 30 < max(defaults) <= 60  # default cap: a minute


def test_earliest_ignores_missing_moments() -> None:
    assert earliest([None, T0 + HOUR, T0, None]) == T0
    assert earliest([None]) is None
