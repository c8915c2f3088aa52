"""The seam: the client library's HTTP session, replaced by one that asks the fake server.

``kubernetes_asyncio``'s ``RESTClientObject.request`` builds the URL (path and query),
the headers and the JSON body, then calls ``pool_manager.request(...)``, an
``aiohttp.ClientSession``. Swapping that session keeps everything above it real: the
generated API methods, their parameter names and content types, and the operator's
whole kube layer (``agentcred.kube``), which reads the raw response as it does in
production (``_preload_content=False``: status, ``read()``, ``release()``, and for a
watch ``content.readline()``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubernetes_asyncio.client import ApiClient, Configuration

from support.harness.server import FakeApiServer, Reply, encode
from support.harness.store import WatchStream

HOST = "http://kube.harness"
REASONS = {200: "OK", 201: "Created", 404: "Not Found", 409: "Conflict", 410: "Gone"}


class _Lines:
    """A watch response's body: one JSON event per line, empty at the end."""

    def __init__(self, stream: WatchStream) -> None:
        self.stream = stream

    async def readline(self) -> bytes:
        event = await self.stream.queue.get()
        return b"" if event is None else json.dumps(event).encode() + b"\n"


class FakeResponse:
    def __init__(self, server: FakeApiServer, reply: Reply) -> None:
        self.status = reply.status
        self.reason = REASONS.get(reply.status, "Error")
        self.headers = {"Content-Type": "application/json", **reply.headers}
        self._server, self._stream = server, reply.stream
        self._body = b"" if reply.stream is not None else encode(reply)
        self.content = _Lines(reply.stream) if reply.stream is not None else None

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        self.close()

    def close(self) -> None:
        if self._stream is not None:
            self._server.store.close_watch(self._stream)


class FakeSession:
    """What ``RESTClientObject`` calls: ``request(method=, url=, headers=, data=, ...)``."""

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self.closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        data: Any = None,
        **_: Any,
    ) -> FakeResponse:
        await asyncio.sleep(0)  # a request is a suspension point, as on the wire
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = json.loads(data) if isinstance(data, str | bytes) and data else None
        content_type = (headers or {}).get("Content-Type", "application/json")
        reply = self.server.handle(method, parts.path, query, content_type, body)
        return FakeResponse(self.server, reply)

    async def close(self) -> None:
        self.closed = True


async def fake_api_client(server: FakeApiServer) -> ApiClient:
    """An ``ApiClient`` whose requests go to ``server`` (the caller closes it)."""
    api = ApiClient(Configuration(host=HOST))
    real = api.rest_client.pool_manager
    api.rest_client.pool_manager = FakeSession(server)  # type: ignore[assignment]  # the seam
    await real.close()
    return api
