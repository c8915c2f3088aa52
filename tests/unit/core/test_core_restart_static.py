"""A restart between two refresh points of a shared static secret re-reads nothing and
rewrites nothing (issue 22: a 20,000 run saw a restart refresh 2,373 tasks early).

The new process does what the real one does on start: drift learns every written
Secret version from the tasks' statuses (``drift.seed``), Kopf lists the tasks (resume)
and the Secret watch lists every generated Secret (``drift.on_secret_event`` with no
type); then time runs up to just before the next grid point. Nothing may reach the
backend and nothing may be written; just after the point every task refreshes once.
"""

from __future__ import annotations

import datetime

from agentcred.services import drift
from agentcred.services.timing import JITTER_SHARE
from support.harness import Harness, play
from support.harness.objects import (
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    service_account,
)

TASKS = 6
KIND = "awsSecretsManager"
INTERVAL = 3600  # hourly, as the scale bench


def _objects() -> list[dict[str, object]]:
    return [
        namespace(),
        service_account(),
        credential_backend(kind=KIND),
        agent_credential(request=KIND, refreshInterval=f"{INTERVAL}s"),
        *(agent_task(f"t{i}") for i in range(TASKS)),
    ]


def _renew_at(h: Harness, name: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(h.entry(name=name)["renewAt"]))


async def _list_secrets(h: Harness) -> None:
    """The Secret watch's first list after a restart, every check run."""
    for secret in h.server.of("secrets"):
        await drift.on_secret_event(h.deps, "ADDED", secret)
    await h.deps.drift.drain()


async def _restart_as_the_process_does(h: Harness) -> None:
    h.restart()
    await drift.seed(h.deps, None)
    for i in range(TASKS):
        await h.event(None, name=f"t{i}")
    await _list_secrets(h)


def test_a_restart_before_the_grid_point_reads_and_writes_nothing() -> None:
    async def scenario(h: Harness) -> None:
        backend = h.backends[KIND]
        for i in range(TASKS):
            await h.start(f"t{i}")
            await h.advance(30)  # issued over three minutes, as a fill
        first = min(_renew_at(h, f"t{i}") for i in range(TASKS))
        before = [h.entry(name=f"t{i}") for i in range(TASKS)]
        backend.take()
        h.take()

        await _restart_as_the_process_does(h)
        quiet = (first - h.clock.now()).total_seconds() - 1
        assert quiet > 0, "the grid point is after the restart"
        await h.advance(quiet)
        assert backend.take() == [], "nothing re-read before the grid point"
        assert [c for c in h.take() if c[0] not in ("get", "list")] == [], "nothing written"
        assert [h.entry(name=f"t{i}") for i in range(TASKS)] == before

        await h.advance(JITTER_SHARE * INTERVAL + 2)  # past the point and every jitter
        assert [op for op, _ in backend.take()] == ["issue"], "one read for them all"
        assert [h.entry(name=f"t{i}")["renewals"] for i in range(TASKS)] == [1] * TASKS

    play(Harness(_objects()), scenario)


def test_the_secret_listing_after_a_restart_checks_no_task() -> None:
    """Every generated Secret's version is known from the seed: no task read, no restore."""

    async def scenario(h: Harness) -> None:
        for i in range(TASKS):
            await h.start(f"t{i}")
        h.backends[KIND].take()
        h.restart()
        await drift.seed(h.deps, None)
        h.take()
        await _list_secrets(h)
        assert h.take() == [] and h.backends[KIND].take() == []

    play(Harness(_objects()), scenario)
