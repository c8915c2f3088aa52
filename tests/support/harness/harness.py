"""The builder: the operator's core wired to the fake API server, fake backends and a fake clock.

As cert-manager's ``pkg/controller/test`` Builder: a test names the objects the cluster
starts with and the backends, gets ``Deps`` built as the operator builds them (only the
API client's HTTP session, the backends, the clock and the RNG are fakes), calls the
same service functions the task events lead to (``start``, ``resume``, ``complete``),
delivers the task's watch events to the operator's one AgentTask handler (``event``,
``delete``: services/task_events.on_event, as Kopf calls it), plays what the other
watches would deliver (``secret_changed``, ``pod_changed``, ``deliver``: the read
cache's events; a new process gets every CredentialBackend, AgentCredential and
Namespace the cluster holds, as Kopf's first listing) and moves time (``advance``),
then asserts the exact API calls (``take``), the backend calls and the resulting status.

Time only moves when the test says so. ``advance`` runs every scheduled step that falls
due on the way, each at its own due time, in order, as the scheduler's loop would:
the step (``maintenance.step``) and the rescheduling rule (``Scheduler._after``: a
negative delay is a retry, a None forgets, an earlier due time already set wins) are
the operator's; only the loop that sleeps until the next due time is the harness's.
Kopf itself is not run: it stores nothing on an AgentTask (an event handler only, see
handlers/tasks.py), so every request for a task is one the harness sees. A task from
before issue 22 is seeded with the old finalizer and Kopf's annotations
(``objects.agent_task(finalizers=..., annotations=...)``).
"""

from __future__ import annotations

import asyncio
import base64
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from agentcred.backends.base import Backend, BackendInvalidConfig
from agentcred.backends.registry import FACTORIES, BackendRegistry
from agentcred.backends.settings import BackendSettings
from agentcred.models.api_names import Kind, Plural
from agentcred.services import (
    cluster_view,
    drift,
    lifecycle,
    maintenance,
    pod_events,
    sweep,
    task_events,
)
from agentcred.services.deps import Deps
from agentcred.services.lookups import Lookups
from agentcred.services.scheduler import Scheduler, TaskKey
from agentcred.services.static_reads import StaticReads
from agentcred.settings import Settings
from support.harness.backends import FakeBackend, RenewableLease, StaticSecret, UnrenewableLease
from support.harness.clock import START, FakeClock
from support.harness.objects import NAMESPACE, OPERATOR_NAMESPACE, namespace
from support.harness.server import Call, FakeApiServer
from support.harness.store import Body
from support.harness.transport import fake_api_client

T = TypeVar("T")
Short = tuple[str, str, str]  # (verb, resource, subresource)
# What Kopf's event handlers feed into the read cache (handlers/backends, credentials,
# namespaces), by plural: the kind cluster_view.observe is told
WATCHED = {
    Plural.BACKENDS.value: Kind.BACKEND.value,
    Plural.CREDENTIALS.value: Kind.CREDENTIAL.value,
    "namespaces": cluster_view.NAMESPACE,
}
EPSILON = 1e-6  # due within a microsecond (the clock's resolution) is due now
MAX_STEPS = 200  # steps run by one ``run_due``: more means a step keeps asking for "now"


def default_backends() -> dict[str, FakeBackend]:
    return {
        "vault": RenewableLease(),
        "awsSts": UnrenewableLease(),
        "awsSecretsManager": StaticSecret(),
    }


class RecordingScheduler(Scheduler):
    """The operator's scheduler, remembering the key of every task it was given."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock=clock)
        self.keys: dict[str, TaskKey] = {}

    def schedule(self, key: TaskKey, delay: float) -> None:
        self.keys[key.uid] = key
        super().schedule(key, delay)


class Harness:
    def __init__(
        self,
        objects: Iterable[Body] = (),
        backends: Mapping[str, FakeBackend] | None = None,
        *,
        clock: FakeClock | None = None,
        settings: Settings | None = None,
        seed: int = 7,
    ) -> None:
        self.clock = clock or FakeClock(START)
        self.server = FakeApiServer(self.clock.now)
        self.backends = dict(backends) if backends is not None else default_backends()
        self.settings = settings or Settings(namespace=OPERATOR_NAMESPACE)
        self.seed = seed
        self._taken = 0
        objects = list(objects)
        self.server.seed(namespace(OPERATOR_NAMESPACE))
        for obj in sorted(objects, key=lambda o: o["kind"] != "Namespace"):
            self.server.seed(obj)

    async def __aenter__(self) -> Harness:
        self.api = await fake_api_client(self.server)
        self.restart()
        return self

    def restart(self) -> None:
        """A new operator process on the same cluster: fresh ``Deps`` (schedule, locks,
        caches, what it wrote), the same API server, backends and clock."""
        registry = BackendRegistry()
        for kind in FACTORIES:  # a kind the test gave no fake for never reaches a network
            registry.register(kind, _unserved(kind))
        for kind, fake in self.backends.items():
            fake.bind(kind, self.clock.now)
            registry.register(kind, _serving(fake))
        self.scheduler = RecordingScheduler(self.clock.monotonic)
        self.deps = Deps(
            api=self.api,
            backends=registry,
            settings=self.settings,
            clock=self.clock.now,
            rng=random.Random(self.seed),
            scheduler=self.scheduler,
            lookups=Lookups(clock=self.clock.monotonic),
            static_reads=StaticReads(clock=self.clock.monotonic),
        )
        for plural in WATCHED:  # Kopf's first listing of what resolve reads from the cache
            for obj in self.server.of(plural):
                self._deliver(plural, None, obj)

    async def __aexit__(self, *exc: object) -> None:
        await self.deps.drift.drain()
        await self.deps.pod_checks.drain()
        await self.api.close()

    # -- what Kopf's handlers would call ---------------------------------------------

    def body(self, name: str = "t1", ns: str = NAMESPACE) -> Body:
        found = self.server.read(Plural.TASKS, ns, name)
        assert found is not None, f"no AgentTask {ns}/{name}"
        return found

    async def start(self, name: str = "t1", ns: str = NAMESPACE, retry: int = 0) -> None:
        """What a new task's ADDED event leads to: ``lifecycle.start`` with the task as
        the event showed it (its errors raised to the test, not retried: ``event`` for
        that); the task is then one this process has seen, as after the handler."""
        body = self.body(name, ns)
        self.deps.seen.add(body["metadata"]["uid"])
        await lifecycle.start(self.deps, body, retry)

    async def resume(self, name: str = "t1", ns: str = NAMESPACE) -> None:
        """The resume handler, as after a restart: the task as Kopf listed it."""
        await lifecycle.resume(self.deps, self.body(name, ns), 0)

    async def complete(self, name: str = "t1", ns: str = NAMESPACE) -> None:
        """The user sets ``spec.completed``; its MODIFIED event is handled."""
        self.server.edit(Plural.TASKS, ns, name, {"spec": {"completed": True}})
        await self.event("MODIFIED", name, ns)

    async def event(
        self, event_type: str | None, name: str = "t1", ns: str = NAMESPACE
    ) -> task_events.Action:
        """The task's watch delivers an event with the task as stored now (type None: the
        initial listing); the operator's AgentTask handler runs. The action decided."""
        return await task_events.on_event(self.deps, event_type, self.body(name, ns))

    async def deliver_task(self, event_type: str | None, body: Body) -> task_events.Action:
        """The task's watch delivers ``body`` (an older one, a DELETED event's last state)."""
        return await task_events.on_event(self.deps, event_type, body)

    async def delete(self, name: str = "t1", ns: str = NAMESPACE) -> None:
        """The user deletes the task: gone at once (no finalizer), its DELETED event
        handled and the cleanup it queued run; held by a finalizer (one from before
        issue 22), its MODIFIED event is handled first (the operator releases the old
        finalizer), then its DELETED."""
        self.server.remove(Plural.TASKS, ns, name)
        if self.task(name, ns) is not None:
            await self.event("MODIFIED", name, ns)
        if self.task(name, ns) is None:
            await self.deliver_task("DELETED", self.last_state(Plural.TASKS, ns, name))
            await self.run_due()  # the cleanup it queued, due now (lifecycle.gone)

    def last_state(self, plural: str, ns: str, name: str) -> Body:
        """The object as its last watch event showed it (a DELETED event's body)."""
        for _, kind, event in reversed(self.server.store.history):
            meta = event["object"]["metadata"]
            if kind == plural and (meta.get("namespace"), meta["name"]) == (ns, name):
                return dict(event["object"])
        raise AssertionError(f"no watch event of {plural} {ns}/{name}")

    # -- what the watches would deliver ------------------------------------------------

    def deliver(self, plural: str, name: str, ns: str = "", event_type: str = "MODIFIED") -> None:
        """Kopf's event handler of AgentCredentials, CredentialBackends or Namespaces sees
        the object as it is now (DELETED when it is gone, whatever ``event_type`` says)."""
        obj = self.server.read(plural, ns, name)
        if obj is None:
            obj, event_type = {"metadata": {"name": name, "namespace": ns or None}}, "DELETED"
        self._deliver(plural, event_type, obj)

    def _deliver(self, plural: str, event_type: str | None, obj: Body) -> None:
        meta = obj["metadata"]
        served = {Plural.CREDENTIALS: meta.get("namespace"), "namespaces": meta["name"]}
        if plural in served and not self.settings.serves(str(served[plural])):
            return  # the handlers' when= filters
        cluster_view.observe(self.deps, WATCHED[plural], event_type, obj)

    def edit_secret(self, ns: str, name: str, data: Mapping[str, str]) -> Body:
        """Someone else rewrites a Secret's data."""
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return self.server.edit("secrets", ns, name, {"data": encoded})

    async def secret_changed(self, obj: Body, event_type: str = "MODIFIED") -> None:
        """The Secret watch delivers ``obj``; the drift check it queues runs to the end.

        Move the clock 30 s past the credential's issue first: the drift check's rate
        limit (services/drift._check) sleeps in real time, not on the clock."""
        await drift.on_secret_event(self.deps, event_type, obj)
        await self.deps.drift.drain()

    async def pod_changed(self, obj: Body, event_type: str = "MODIFIED") -> None:
        """The pod watch delivers ``obj``; the re-assessments it queues run to the end."""
        pod_events.on_pod_event(self.deps, event_type, obj)
        await self.deps.pod_checks.drain()

    async def sweep(self) -> sweep.SweepResult:
        return await sweep.sweep(self.deps)

    # -- time --------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """Seconds until the earliest scheduled step (None: nothing scheduled)."""
        dues = [d for uid in self.scheduler.keys if (d := self.scheduler.due_in(uid)) is not None]
        return min(dues) if dues else None

    async def advance(self, seconds: float) -> int:
        """Move time forward, running each step at its due time; the steps run."""
        target = self.clock.monotonic() + seconds
        ran = await self.run_due()
        while (due := self.next_due()) is not None and self.clock.monotonic() + due <= target:
            self.clock.advance(math.ceil(due * 1e6) / 1e6)  # the clock counts microseconds
            ran += await self.run_due()
        self.clock.advance(target - self.clock.monotonic())
        return ran + await self.run_due()

    async def run_due(self) -> int:
        """Run every step due now, earliest first, until none is."""
        for ran in range(MAX_STEPS):
            due = [
                (d, key)
                for uid, key in self.scheduler.keys.items()
                if (d := self.scheduler.due_in(uid)) is not None and d <= EPSILON
            ]
            if not due:
                return ran
            await self._step(min(due, key=lambda pair: pair[0])[1])
        raise AssertionError(f"more than {MAX_STEPS} steps due at once")

    async def _step(self, key: TaskKey) -> None:
        attempt = self.scheduler.attempts(key.uid)
        self.scheduler.take(key.uid)  # taken off the heap, as the loop does
        delay = await maintenance.step(self.deps, key, attempt)
        self.scheduler.after(key.uid, delay)  # the loop's rule after a step

    # -- what happened -----------------------------------------------------------------

    def take_calls(self) -> list[Call]:
        """The API calls made since the last ``take``/``take_calls``."""
        calls = self.server.calls[self._taken :]
        self._taken = len(self.server.calls)
        return calls

    def take(self) -> list[Short]:
        """``take_calls`` as ``(verb, resource, subresource)`` tuples."""
        return [c.short for c in self.take_calls()]

    def task(self, name: str = "t1", ns: str = NAMESPACE) -> Body | None:
        return self.server.read(Plural.TASKS, ns, name)

    def status(self, name: str = "t1", ns: str = NAMESPACE) -> dict[str, Any]:
        return dict(self.body(name, ns).get("status") or {})

    def ready(self, name: str = "t1", ns: str = NAMESPACE) -> tuple[str, str] | None:
        """The Ready condition as (status, reason)."""
        for cond in self.status(name, ns).get("conditions") or []:
            if cond.get("type") == "Ready":
                return str(cond.get("status")), str(cond.get("reason"))
        return None

    def entry(self, credential: str = "db", name: str = "t1", ns: str = NAMESPACE) -> Body:
        entries = self.status(name, ns).get("credentials") or []
        return next(e for e in entries if e.get("name") == credential)

    def secret_data(self, ns: str, name: str) -> dict[str, str] | None:
        obj = self.server.read("secrets", ns, name)
        if obj is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}

    def record_keys(self, name: str = "t1", ns: str = NAMESPACE) -> list[str]:
        """The keys of the task's lease record (empty: no record)."""
        uid = self.body(name, ns)["metadata"]["uid"]
        data = self.secret_data(OPERATOR_NAMESPACE, f"agentcred-session-{uid}")
        return sorted(data or {})


def _unserved(kind: str) -> Callable[[BackendSettings], Backend]:
    def factory(_settings: BackendSettings) -> Backend:
        raise BackendInvalidConfig(f"the harness has no fake {kind!r} backend (pass backends=)")

    return factory


def _serving(fake: FakeBackend) -> Callable[[BackendSettings], Backend]:
    """A registry factory that hands out ``fake`` itself (the test keeps a handle on it)."""

    def factory(_settings: BackendSettings) -> Backend:
        return fake

    return factory


def count(calls: Iterable[Short]) -> Counter[str]:
    """Calls per verb and resource: ``{"get agenttasks": 1, "patch agenttasks/status": 1}``."""
    return Counter(f"{v} {r}/{s}" if s else f"{v} {r}" for v, r, s in calls)


def play(harness: Harness, scenario: Callable[[Harness], Awaitable[T]]) -> T:
    """Run ``scenario`` against ``harness`` in a fresh event loop."""

    async def main() -> T:
        async with harness as h:
            return await scenario(h)

    return asyncio.run(main())
