"""Count every backend call by backend, operation and outcome (Prometheus).

A thin wrapper the registry puts around each backend, so the counting lives in one
place and the backends stay free of it. Session backends keep their extra methods
(the wrapper class mirrors the protocol the wrapped backend implements).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable
from typing import TypeVar

from agentcred import metrics
from agentcred.backends.base import (
    Backend,
    BackendError,
    Capabilities,
    Issued,
    IssueRequest,
    Lease,
    Renewed,
    Session,
    SessionBackend,
)
from agentcred.models.resolved import ResolvedCredential

T = TypeVar("T")
# Issue and revoke are timed end to end where they happen (services/lifecycle.py,
# services/revocation.py); a renewal is one backend call, timed here.
DURATIONS = {"renew": metrics.RENEW_DURATION}


async def _counted(kind: str, operation: str, call: Awaitable[T]) -> T:
    outcome = "success"
    started = time.monotonic()
    try:
        return await call
    except BackendError as exc:
        outcome = exc.reason
        raise
    finally:
        metrics.BACKEND_CALLS.labels(kind, operation, outcome).inc()
        if operation in DURATIONS:
            DURATIONS[operation].labels(kind).observe(time.monotonic() - started)


class InstrumentedBackend:
    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.kind = inner.kind

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return self.inner.capabilities(spec)

    def validate(self, spec: ResolvedCredential) -> None:
        self.inner.validate(spec)

    async def check(self, spec: ResolvedCredential) -> None:
        await _counted(self.kind, "check", self.inner.check(spec))

    async def issue(self, request: IssueRequest) -> Issued:
        return await _counted(self.kind, "issue", self.inner.issue(request))

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        return await _counted(self.kind, "renew", self.inner.renew(lease, ttl))

    async def revoke(self, lease: Lease) -> None:
        await _counted(self.kind, "revoke", self.inner.revoke(lease))

    async def aclose(self) -> None:
        await self.inner.aclose()


class InstrumentedSessionBackend(InstrumentedBackend):
    def __init__(self, inner: SessionBackend) -> None:
        super().__init__(inner)
        self.session_inner = inner

    async def login(self, request: IssueRequest) -> Session:
        return await _counted(self.kind, "login", self.session_inner.login(request))

    async def issue_with(self, request: IssueRequest, session: Session) -> Issued:
        return await _counted(self.kind, "issue", self.session_inner.issue_with(request, session))


def instrument(backend: Backend) -> Backend:
    if isinstance(backend, SessionBackend):
        return InstrumentedSessionBackend(backend)
    return InstrumentedBackend(backend)
