"""A cluster for the client's unit tests: the operator's own core (``lifecycle``) run by
the in-process harness (tests/support/harness: a fake API server with watches and fake
backends), driven by a stand-in for Kopf that watches AgentTasks and calls what the
operator's handlers call. The client talks to the same fake server through its own
``kubernetes_asyncio`` ApiClient, so every request it makes is recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubernetes_asyncio.client import ApiClient

from agentcred.models.api_names import Plural
from agentcred.models.errors import OperatorError
from agentcred.services import lifecycle
from agentcred_client import AgentTasks
from support.harness import Harness
from support.harness.kinds import KINDS, parse_path
from support.harness.server import FakeApiServer
from support.harness.store import Body, WatchStream
from support.harness.transport import fake_api_client

NAMESPACE = "team-a"


class FakeKopf:
    """Calls ``lifecycle.start`` for a new task and ``lifecycle.complete`` when its spec
    changes (``completed`` or ``failureReason``), as the Kopf handlers do; status writes
    (the operator's own) are not spec changes and are ignored. ``hold`` keeps new tasks
    waiting (an operator that has not got to them yet)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.hold = False
        self.errors: list[BaseException] = []
        self.busy = False
        self.arrived = asyncio.Event()  # a task arrived while held
        self.stream = WatchStream(KINDS[Plural.TASKS], "", None)

    async def settle(self) -> None:
        """Until every event so far is handled (all in-process: each request is one
        suspension point, so this ends after a bounded number of turns)."""
        for _ in range(10_000):
            await asyncio.sleep(0)
            if self.stream.queue.empty() and not self.busy:
                return
        raise AssertionError("the operator stand-in did not settle")

    async def run(self) -> None:
        stream = self.stream
        store = self.h.server.store
        store.open_watch(stream, str(store.version))
        generations: dict[str, int] = {}
        try:
            while (event := await stream.queue.get()) is not None:
                obj: Body = event["object"]
                uid = obj["metadata"]["uid"]
                generation = obj["metadata"].get("generation", 1)
                if event["type"] == "DELETED":
                    continue
                if self.hold:
                    self.arrived.set()
                    continue
                if uid not in generations:
                    generations[uid] = generation
                    await self._call(lifecycle.start, obj)
                elif generation != generations[uid]:
                    generations[uid] = generation
                    await self._call(lifecycle.complete, obj)
        finally:
            store.close_watch(stream)

    async def _call(self, handler: Any, obj: Body) -> None:
        self.busy = True
        try:
            if handler is lifecycle.start:
                await handler(self.h.deps, obj, 0)
            else:
                await handler(self.h.deps, obj)
        except OperatorError as exc:  # Kopf would retry; a test that expects it says so
            self.errors.append(exc)
        finally:
            self.busy = False


class ClientCalls(list[tuple[str, str, str]]):
    """The client's own requests, as ``(verb, resource, subresource)`` like the harness's
    (the server's record mixes them with the operator's)."""

    def api_for(self, h: Harness) -> Callable[[], Awaitable[ApiClient]]:
        async def make() -> ApiClient:
            api = await fake_api_client(h.server)
            session = api.rest_client.pool_manager
            real = session.request

            async def request(method: str, url: str, **kwargs: Any) -> Any:
                parts = urlsplit(url)
                target = parse_path(parts.path)
                query = dict(parse_qsl(parts.query))
                verb = FakeApiServer._verb(method, target, query)
                self.append((verb, target.kind.plural, target.subresource))
                return await real(method, url, **kwargs)

            session.request = request
            return api

        return make


@contextlib.asynccontextmanager
async def cluster(
    objects: Iterable[Body],
) -> AsyncIterator[tuple[Harness, FakeKopf, AgentTasks, ClientCalls]]:
    """The harness with ``objects``, its operator stand-in running, and an ``AgentTasks``
    on the same fake server (its requests recorded in the ClientCalls)."""
    async with Harness(objects) as h:
        kopf = FakeKopf(h)
        runner = asyncio.create_task(kopf.run())
        calls = ClientCalls()
        tasks = AgentTasks(NAMESPACE, api=calls.api_for(h))
        try:
            yield h, kopf, tasks, calls
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await tasks.aclose()
