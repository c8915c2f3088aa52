"""One fake time for everything the core reads time from.

``Deps.clock`` (wall time, datetimes), and the monotonic clocks of the scheduler, the
shared lookups and the static reads all read this, so advancing it moves every one
of them together and nothing in a harness test waits for real time.
"""

from __future__ import annotations

import datetime

START = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)


class FakeClock:
    def __init__(self, start: datetime.datetime = START) -> None:
        self._now = start

    def now(self) -> datetime.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._now.timestamp()

    def advance(self, seconds: float) -> None:
        self._now += datetime.timedelta(seconds=seconds)

    def set(self, moment: datetime.datetime) -> None:
        if moment < self._now:
            raise ValueError("time only moves forward")
        self._now = moment
