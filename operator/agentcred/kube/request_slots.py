"""Fair turns at the API server for the operator's own requests.

On two cores the API server is the bottleneck of a burst: when one namespace creates 500
tasks at once, the operator's task workers put a few hundred requests in flight and the API
server serves them together, each slower the more there are. A task of another namespace
then needs its eight or so requests answered one after the other, each behind the whole
flood's: seconds, although the operator admitted it at once (issue 18, docs/performance.md
"Fairness").

So every request of this layer (``calls.call``; never a watch, which stays open) first
takes a turn from a small number of turns shared between namespaces, handed round-robin
across the namespaces waiting (``services.fair_slots.FairSlots``, installed at start-up):
the API server sees a short queue, and a newcomer's request waits for one turn to free,
not for everybody's. Whose turn a request uses is the namespace the current piece of work
acts for (:func:`acting_for`, a context variable set by the services at each task's entry
point); work for no namespace (start-up lists, the sweep's scans) shares the key ``""``.

Kopf's own requests (its finalizer and annotation PATCHes: one namespace's burst of 500
tasks is 500 of them at once) take the same turns: Kopf is given an HTTP session whose
middleware (:func:`kopf_middleware`) holds a turn for the namespace in the request's path
(``kube/client.make_kopf_session``). Watches never wait for a turn.

Nothing is installed in tests that do not ask for it, and without it a request goes
straight through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar, Token
from typing import Protocol

import aiohttp

NAMESPACED_PATH = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)/namespaces/([^/]+)/[^/]+")

_acting_for: ContextVar[str] = ContextVar("agentcred_acting_for", default="")


class Slots(Protocol):
    def hold(self, key: str) -> AbstractAsyncContextManager[None]: ...


_slots: Slots | None = None


def install(slots: Slots | None) -> None:
    """Use ``slots`` for every later request (None: requests go straight through)."""
    global _slots  # noqa: PLW0603 - one API server, one set of turns per process
    _slots = slots


class acting_for:  # used like a function: ``async with acting_for(ns), ...``
    """Requests made inside the block (and in tasks it starts) use ``namespace``'s turns.

    Usable with ``with`` and ``async with`` (beside the locks a task's step takes)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._tokens: list[Token[str]] = []

    def __enter__(self) -> None:
        self._tokens.append(_acting_for.set(self.namespace))

    def __exit__(self, *_: object) -> None:
        _acting_for.reset(self._tokens.pop())

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *_: object) -> None:
        self.__exit__()


def current() -> str:
    """The namespace requests made here are counted for (``""``: none)."""
    return _acting_for.get()


@asynccontextmanager
async def turn(namespace: str | None = None) -> AsyncIterator[None]:
    """Hold one request turn for ``namespace`` (default: the current one) while the
    block runs."""
    slots = _slots
    if slots is None:
        yield
        return
    async with slots.hold(_acting_for.get() if namespace is None else namespace):
        yield


def namespace_of(path: str) -> str | None:
    """The namespace a request's path names (``/api/v1/namespaces/team-a/pods``: team-a);
    None for a cluster-scoped path or the namespace object itself."""
    match = NAMESPACED_PATH.match(path)
    return match.group(1) if match else None


async def kopf_middleware(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """aiohttp client middleware for Kopf's session: a turn per request, watches aside.
    The turn ends with the response's headers: the API server has done its work then."""
    if request.url.query.get("watch") in ("true", "1"):
        return await handler(request)
    async with turn(namespace_of(request.url.path) or ""):
        return await handler(request)
