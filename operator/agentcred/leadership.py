"""Leader election between operator replicas, around ``kopf.operator``.

The Deployment runs two replicas so that a rollout or the loss of a node does not stop
renewals and revocations; exactly one of them may act. Kopf's own peering is not
used (it pauses handlers by priority but does not fence a stuck peer); instead every
replica competes for one ``coordination.k8s.io`` Lease, as controller-runtime
managers do, and only the holder starts Kopf:

* **standby**: poll the Lease every ``retry_period``; take it once its holder released
  it or let it expire (by our clock, see ``agentcred.models.leadership``). Meanwhile serve
  ``/healthz`` so the kubelet keeps the standby (it is healthy, just not leading).
* **leader**: renew every ``retry_period``. If the Lease shows another holder, or no
  renewal succeeded for ``renew_deadline``, the replica must assume a standby has taken
  over: it exits at once with status 1 (like controller-runtime's "leader election
  lost"), so no handler of the old leader runs next to the new one's; the kubelet
  restarts it as a standby.
* **clean shutdown** (SIGTERM from a rollout or a pod deletion): Kopf stops, then the
  leader releases the Lease (controller-runtime's ``LeaderElectionReleaseOnCancel``),
  so the standby takes over within one ``retry_period`` instead of a lease duration.

Only ``agentcred.kube`` talks to the API; this module holds the loop and the timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web

from agentcred.kube.client import ApiClient
from agentcred.kube.errors import KubeConflict, KubeError
from agentcred.kube.leadership import (
    create_leadership_lease,
    read_leadership_lease,
    replace_leadership_lease,
)
from agentcred.models.leadership import (
    LeadershipAction,
    LeadershipLease,
    claimed,
    decide,
    expires_in,
    released,
    renewal_lost,
)

log = logging.getLogger("agentcred.leadership")


@dataclass(frozen=True)
class LeadershipTiming:
    """client-go's three durations, in seconds: how long a Lease is valid without renewal,
    how long a leader keeps trying to renew before giving up, and the polling period."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class Leadership:
    """One replica's part in leader election: ``acquire`` (block until it holds the
    Lease), ``keep`` (renew while leading), ``release`` (a clean shutdown)."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        timing: LeadershipTiming,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.identity, self.timing = identity, timing
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.observed: LeadershipLease | None = None
        self.observed_at: float | None = None
        self.holding: LeadershipLease | None = None  # what we last wrote, while we lead

    def _observe(self, record: LeadershipLease | None) -> None:
        if record is None or not record.same_as(self.observed):
            self.observed, self.observed_at = record, self.clock()

    async def try_acquire_or_renew(self) -> bool:
        """One round: read, decide, write. True if we hold the Lease afterwards."""
        record = await read_leadership_lease(self.api, self.namespace, self.name)
        self._observe(record)
        action = decide(self.identity, record, observed_at=self.observed_at, now=self.clock())
        if action is LeadershipAction.WAIT:
            self.holding = None
            return False
        wanted = claimed(
            self.identity,
            record,
            action,
            duration_seconds=max(1, round(self.timing.lease_duration)),
            wall_now=self.wall(),
        )
        try:
            if action is LeadershipAction.CREATE:
                written = await create_leadership_lease(self.api, self.namespace, self.name, wanted)
            else:
                written = await replace_leadership_lease(
                    self.api, self.namespace, self.name, wanted
                )
        except KubeConflict:
            return False  # another replica wrote first; read again next round
        self._observe(written)
        if action is not LeadershipAction.RENEW:
            log.info(
                "acquired leadership",
                extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity},
            )
        self.holding = written
        return True

    def _wait_time(self) -> float:
        """Until the next attempt: the retry period, or sooner if the holder's lease runs
        out before that (by our clock)."""
        period = self.timing.retry_period
        if self.observed is None or self.observed_at is None or not self.observed.holder:
            return period
        remaining = expires_in(self.observed, observed_at=self.observed_at, now=self.clock())
        return max(0.05, min(period, remaining + 0.05))

    async def acquire(self) -> None:
        """Block until this replica holds the Lease."""
        announced = False
        while True:
            try:
                if await self.try_acquire_or_renew():
                    return
            except KubeError as exc:
                log.warning("leader election: cannot read or write the lease: %s", exc)
            if not announced and self.observed is not None:
                lease = f"{self.namespace}/{self.name}"
                log.info(
                    "standing by: another replica leads",
                    extra={"lease": lease, "leader": self.observed.holder},
                )
                announced = True
            await self.sleep(self._wait_time())

    async def keep(self, on_lost: Callable[[str], None]) -> None:
        """While leading: renew every retry period; call ``on_lost`` once leadership is gone."""
        last_renewed = self.clock()
        while True:
            await self.sleep(self.timing.retry_period)
            try:
                left = max(0.1, self.timing.renew_deadline - (self.clock() - last_renewed))
                renewed = await asyncio.wait_for(self.try_acquire_or_renew(), left)
            except (KubeError, TimeoutError) as exc:
                log.warning("leader election: renewal failed: %s", exc)
                renewed = False
            if renewed:
                last_renewed = self.clock()
                continue
            holder = self.observed.holder if self.observed is not None else None
            if renewal_lost(
                last_renewed=last_renewed,
                now=self.clock(),
                renew_deadline=self.timing.renew_deadline,
                holder_now=holder,
                me=self.identity,
            ):
                self.holding = None
                taken = holder is not None and holder != self.identity
                on_lost(f"lease now held by {holder}" if taken else "renew deadline passed")
                return

    async def release(self) -> None:
        """Give the Lease up if we still hold it (a clean shutdown); errors are only logged:
        the Lease then simply expires."""
        if self.holding is None:
            return
        try:
            record = await read_leadership_lease(self.api, self.namespace, self.name)
            if record is None or record.holder != self.identity:
                return
            await replace_leadership_lease(
                self.api, self.namespace, self.name, released(record, wall_now=self.wall())
            )
            log.info("released leadership", extra={"lease": f"{self.namespace}/{self.name}"})
        except KubeError as exc:
            log.warning("leader election: could not release the lease: %s", exc)
        finally:
            self.holding = None


class StandbyHealth:
    """``/healthz`` for a replica that is not leading (Kopf, which serves it while
    leading, is not running yet). Same address as ``AGENTCRED_LIVENESS_ENDPOINT``."""

    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        if not self.endpoint:
            return
        url = urlsplit(self.endpoint)

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"leader": False})

        app = web.Application()
        app.router.add_get(url.path or "/", healthz)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, url.hostname or "0.0.0.0", url.port or 80)  # noqa: S104
        await site.start()

    async def stop(self) -> None:
        if self.runner is not None:
            with contextlib.suppress(Exception):
                await self.runner.cleanup()
            self.runner = None
