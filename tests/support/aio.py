"""Running the async Kubernetes layer from plain (sync) pytest functions.

pytest-asyncio is not used: each test runs its scenario with ``asyncio.run`` on an
``ApiClient`` built exactly as the operator builds it (``make_api_client``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kubernetes_asyncio.client import ApiClient

from agentcred.kube.client import make_api_client

T = TypeVar("T")


def run_with_api(scenario: Callable[[ApiClient], Awaitable[T]]) -> T:
    """Run ``scenario(api)`` in a fresh event loop and close the client afterwards."""

    async def main() -> T:
        api = await make_api_client()
        async with api:
            return await scenario(api)

    return asyncio.run(main())


async def eventually(
    check: Callable[[], T | None], what: str = "condition", within: float = 30.0
) -> T:
    """Await until ``check()`` is truthy (yielding to the loop between tries), or fail."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")
