"""The operator's API requests take fair turns: a request of a quiet namespace is sent as
soon as one turn frees, not after a flooding namespace's whole queue (kube/request_slots.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from yarl import URL

from agentcred.kube import request_slots
from agentcred.kube.calls import call
from agentcred.services.fair_slots import FairSlots


class Answer:
    """Just enough of an aiohttp response for ``calls.read_checked``."""

    status = 200
    reason = "OK"
    headers: ClassVar[dict[str, str]] = {}

    async def read(self) -> bytes:
        return b"{}"

    def release(self) -> None:
        pass


class ApiServer:
    """Holds every request until the test lets it through; records the order sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def method(self, name: str, **_: Any) -> Answer:
        self.sent.append(name)
        gate = self.gates.setdefault(name, asyncio.Event())
        await gate.wait()
        return Answer()

    def answer(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
def one_turn() -> Iterator[None]:
    request_slots.install(FairSlots(1, share=1.0))
    yield
    request_slots.install(None)


async def _request(server: ApiServer, namespace: str, name: str) -> None:
    async with request_slots.acting_for(namespace):
        await call(name, server.method, name)


def test_a_quiet_namespace_gets_the_next_turn_not_the_last(one_turn: None) -> None:
    async def scenario() -> list[str]:
        server = ApiServer()
        flood = [asyncio.create_task(_request(server, "flood", f"flood-{i}")) for i in range(5)]
        await settle()
        victim = asyncio.create_task(_request(server, "quiet", "quiet-0"))
        await settle()
        assert server.sent == ["flood-0"]  # one turn: the rest wait before being sent
        server.answer("flood-0")
        await settle()
        assert server.sent[-1] == "quiet-0"  # sent as soon as the first turn freed
        for name in ["quiet-0", *(f"flood-{i}" for i in range(1, 5))]:
            server.answer(name)
            await settle()
        await asyncio.gather(victim, *flood)
        return server.sent

    assert asyncio.run(scenario()) == ["flood-0", "quiet-0", *(f"flood-{i}" for i in range(1, 5))]


def test_without_fair_turns_the_quiet_request_waits_behind_the_flood() -> None:
    """The control: a plain FIFO (what the API server and a connection pool do)."""

    async def scenario() -> list[str]:
        server = ApiServer()
        fifo = asyncio.Semaphore(1)

        async def request(namespace: str, name: str) -> None:
            async with fifo:
                await _request(server, namespace, name)

        flood = [asyncio.create_task(request("flood", f"flood-{i}")) for i in range(5)]
        await settle()
        victim = asyncio.create_task(request("quiet", "quiet-0"))
        for name in [*(f"flood-{i}" for i in range(5)), "quiet-0"]:
            await settle()
            server.answer(name)
        await asyncio.gather(victim, *flood)
        return server.sent

    assert asyncio.run(scenario())[-1] == "quiet-0"


def test_the_namespace_a_request_counts_for_follows_the_work_into_its_tasks() -> None:
    async def scenario() -> tuple[str, str, str]:
        async def inner() -> str:
            return request_slots.current()

        async with request_slots.acting_for("team-a"):
            child = await asyncio.create_task(inner())
            here = request_slots.current()
        return child, here, request_slots.current()

    assert asyncio.run(scenario()) == ("team-a", "team-a", "")


def test_with_nothing_installed_requests_go_straight_through() -> None:
    async def scenario() -> list[str]:
        server = ApiServer()
        for name in ("a", "b"):
            server.answer(name)
        await asyncio.gather(_request(server, "x", "a"), _request(server, "y", "b"))
        return server.sent

    assert sorted(asyncio.run(scenario())) == ["a", "b"]


@pytest.mark.parametrize(
    ("path", "namespace"),
    [
        ("/apis/agentcred.io/v1alpha1/namespaces/team-a/agenttasks/t1", "team-a"),
        ("/api/v1/namespaces/team-a/serviceaccounts/agent/token", "team-a"),
        ("/api/v1/namespaces/team-a", None),  # the namespace object itself
        ("/apis/agentcred.io/v1alpha1/credentialbackends/vault", None),
        ("/apis/agentcred.io/v1alpha1/agenttasks", None),
    ],
)
def test_kopfs_requests_count_for_the_namespace_in_their_path(
    path: str, namespace: str | None
) -> None:
    assert request_slots.namespace_of(path) == namespace


class KopfRequest:
    """What the middleware reads of an aiohttp ClientRequest."""

    def __init__(self, url: str) -> None:
        self.url = URL(url)


def test_kopfs_patches_take_fair_turns_and_its_watches_none(one_turn: None) -> None:
    async def scenario() -> list[str]:
        server = ApiServer()

        async def handler(request: KopfRequest) -> Answer:
            return await server.method(request.url.path.rsplit("/", 1)[-1])

        def kopf(url: str) -> asyncio.Task[Any]:
            return asyncio.create_task(request_slots.kopf_middleware(KopfRequest(url), handler))  # type: ignore[arg-type]

        base = "https://api/apis/agentcred.io/v1alpha1"
        flood = [kopf(f"{base}/namespaces/flood/agenttasks/flood-{i}") for i in range(3)]
        await settle()
        watch = kopf(f"{base}/agenttasks/watch-all?watch=true")
        quiet = kopf(f"{base}/namespaces/quiet/agenttasks/quiet-0")
        await settle()
        assert server.sent == ["flood-0", "watch-all"]  # the watch does not wait
        for name in ["flood-0", "quiet-0", "flood-1", "flood-2", "watch-all"]:
            server.answer(name)
            await settle()
        await asyncio.gather(*flood, watch, quiet)
        return server.sent

    assert asyncio.run(scenario()) == ["flood-0", "watch-all", "quiet-0", "flood-1", "flood-2"]
