"""Run a backend SDK's blocking calls in threads, never on the event loop.

The SDKs agentcred talks to (hvac, boto3, ...) are synchronous: one slow call on the
event loop would stall every Kopf handler and the scheduler of the operator. Each backend kind
gets its own bounded thread pool, so a backend that hangs cannot starve the others, and
an ``asyncio.Semaphore`` of the same size, so callers beyond the pool's width wait in
asyncio, where they can be cancelled, instead of piling up in the executor's queue.
Context variables (e.g. a correlation id bound for logging) follow the call into its
thread, as with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner:
    """A bounded thread pool plus a semaphore for one backend kind."""

    def __init__(self, kind: str, concurrency: int = 16) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.kind = kind
        self.concurrency = concurrency
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix=f"agentcred-{kind}"
        )
        # One semaphore per event loop: an asyncio primitive belongs to the loop it first
        # waited on, and tests run several loops one after another (asyncio.run).
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` in this kind's pool and return its result."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        async with self._semaphore(loop):
            return await loop.run_in_executor(self._executor, call)

    def close(self, wait: bool = True) -> None:
        """Stop the pool; calls already running finish, queued ones are cancelled."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def _semaphore(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.concurrency)
        return semaphore
