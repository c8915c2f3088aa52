"""Our own watches at 20,000 objects (issue 22): lists in pages, resumption from the last
resourceVersion a bookmark gave, and a re-list after 410 Gone that reports only what
changed, against the fake API server (its watch history is bounded: resuming from a
version older than it is 410 Gone, as on a real one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubernetes_asyncio.client import ApiClient

from agentcred.kube import watch
from agentcred.kube.calls import PAGE_SIZE
from agentcred.models.api_names import MANAGED_SELECTOR, Label
from support.harness import FakeApiServer, FakeClock
from support.harness.objects import namespace
from support.harness.transport import fake_api_client

T = TypeVar("T")
Seen = list[tuple[str, str]]


def served(scenario: Callable[[FakeApiServer, ApiClient], Awaitable[T]]) -> T:
    async def main() -> T:
        server = FakeApiServer(FakeClock().now)
        server.seed(namespace("a"))
        api = await fake_api_client(server)
        try:
            return await scenario(server, api)
        finally:
            await api.close()

    return asyncio.run(main())


def secret(name: str, labelled: bool = True) -> dict[str, Any]:
    labels = {Label.MANAGED_BY: "agentcred"} if labelled else {}
    return {"kind": "Secret", "metadata": {"name": name, "namespace": "a", "labels": labels}}


class Watching:
    """watch_secrets on namespace ``a`` in the background, recording what it delivers."""

    def __init__(self, server: FakeApiServer, api: ApiClient) -> None:
        self.server, self.seen, self.stop = server, [], asyncio.Event()
        self.seen: Seen
        self.task = asyncio.create_task(
            watch.watch_secrets(api, MANAGED_SELECTOR, self.on_event, self.stop, "a")
        )

    async def on_event(self, type_: str, obj: dict[str, Any]) -> None:
        self.seen.append((type_, obj["metadata"]["name"]))

    async def until(self, count: int) -> Seen:
        for _ in range(2000):
            if len(self.seen) >= count:
                return self.seen
            await asyncio.sleep(0.005)
        raise AssertionError(f"{len(self.seen)} events, expected {count}: {self.seen[-5:]}")

    async def streaming(self) -> None:
        """Until the watch has its stream open (the list before it is done)."""
        for _ in range(2000):
            if self.server.store.streams:
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the watch never opened its stream")

    async def stopped(self) -> list[str]:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)
        return [c.verb for c in self.server.calls if c.resource == "secrets"]


def test_the_first_list_comes_in_pages() -> None:
    count = 2 * PAGE_SIZE + 100

    async def scenario(server: FakeApiServer, api: ApiClient) -> list[str]:
        for i in range(count):
            server.seed(secret(f"s{i:05d}"))
        watching = Watching(server, api)
        assert len(await watching.until(count)) == count
        return await watching.stopped()

    assert served(scenario) == ["list", "list", "list", "watch"]


def test_a_bookmark_keeps_the_resume_point_fresh_so_no_relist_follows() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient, bookmark: bool) -> list[str]:
        server.store.history_size = 50
        server.seed(secret("ours"))
        watching = Watching(server, api)
        await watching.until(1)
        await watching.streaming()
        for i in range(60):  # others' Secrets move the version past the history's reach
            server.seed(secret(f"other{i}", labelled=False))
        if bookmark:
            server.store.bookmark()
        server.store.end_watches()  # the server's timeout (after the bookmark): it resumes
        server.seed(secret("after"))
        await watching.until(2)
        return await watching.stopped()

    with_bookmarks = served(lambda s, a: scenario(s, a, bookmark=True))
    assert with_bookmarks == ["list", "watch", "watch"]
    without = served(lambda s, a: scenario(s, a, bookmark=False))
    assert without == ["list", "watch", "watch", "list", "watch"]  # 410 Gone, then a list


def test_a_relist_after_410_gone_reports_only_what_changed_and_watches_on() -> None:
    async def scenario(server: FakeApiServer, api: ApiClient) -> tuple[Seen, list[str]]:
        for i in range(300):
            server.seed(secret(f"s{i:03d}"))
        watching = Watching(server, api)
        await watching.until(300)
        await watching.streaming()  # from the list's version
        server.store.end_watches()
        server.store.compact()  # the history is gone: resuming is 410 Gone
        server.remove("secrets", "a", "s001")
        server.edit("secrets", "a", "s002", {"data": {"k": "dg=="}})
        server.seed(secret("new"))
        await watching.until(303)
        server.seed(secret("streamed"))  # the watch goes on from the re-list's version
        await watching.until(304)
        return watching.seen[300:], await watching.stopped()

    events, verbs = served(scenario)
    relisted = {("DELETED", "s001"), ("MODIFIED", "s002"), ("ADDED", "new")}
    assert set(events[:3]) == relisted  # not 300 events for the 297 that did not change
    assert events[3:] == [("ADDED", "streamed")]
    assert verbs == ["list", "watch", "watch", "list", "watch"]
