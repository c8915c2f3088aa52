"""What the SDK-backed backends share: a thread pool of their own (or one given), the
operator's factory, and the debug line and answer of an issue."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Self

from agentcred.backends.base import Capabilities, Issued, IssueRequest
from agentcred.backends.blocking import BlockingRunner
from agentcred.backends.lru import DEFAULT_SIZE
from agentcred.backends.settings import BackendSettings

STATIC = Capabilities(renewable=False, revocable=False, static=True)


class PooledBackend:
    """A backend whose SDK calls run in a ``BlockingRunner``: its own unless one is given
    (``aclose`` then closes it through ``_close_runner``)."""

    kind: str

    def __init__(
        self,
        concurrency: int = 16,
        cache_size: int = DEFAULT_SIZE,
        *,
        timeout: float = 30.0,
        runner: BlockingRunner | None = None,
    ) -> None:
        """``concurrency``: width of this backend's thread pool (and connection pool).
        ``timeout``: seconds for one call (for AWS, the connect and the read timeout of each
        HTTP request). ``_make_clients`` then sets up the backend's client cache."""
        self._timeout = timeout
        self._owns_runner = runner is None
        self._runner = runner or BlockingRunner(self.kind, concurrency)
        self._make_clients(cache_size)

    def _make_clients(self, cache_size: int) -> None:
        """Set up the backend's SDK clients (a cache of ``cache_size``); none by default."""

    @classmethod
    def from_settings(cls, settings: BackendSettings) -> Self:
        """The operator's instance (``registry.FACTORIES``)."""
        return cls(
            concurrency=settings.concurrency,
            cache_size=settings.cache_size,
            timeout=settings.timeout,
        )

    def _close_runner(self) -> None:
        if self._owns_runner:
            self._runner.close(wait=False)


def log_issue(log: logging.Logger, request: IssueRequest, what: str, *args: object) -> None:
    """The debug line of an issue: ``what % args``, for which credential of which task."""
    log.debug(
        what + " for credential %s of task %s/%s (correlation %s)",
        *args,
        request.credential,
        request.identity.namespace,
        request.identity.task,
        request.correlation_id,
    )


def unrenewable(
    data: Mapping[str, str],
    lease_id: str,
    issued_at: datetime.datetime,
    expires_at: datetime.datetime | None = None,
) -> Issued:
    """What an issue returns for a value read (or a session) that cannot be renewed."""
    return Issued(
        data=data,
        lease_id=lease_id,
        issued_at=issued_at,
        expires_at=expires_at,
        renewable=False,
        session=None,
    )
