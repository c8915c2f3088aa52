"""Fake credential backends, one per capability the core plans around.

* ``RenewableLease``: a session backend (as Vault): ``login`` asks a TokenRequest for
  the agent (an API call, as the real one makes), leases are renewed in place, revoked
  through their session; a KV block is a static read (as Vault's KV).
* ``UnrenewableLease``: the same, but its leases cannot be renewed: they are re-issued.
* ``StaticSecret``: a stored value read on a refresh grid (as Secrets Manager), no
  session, nothing to revoke; ``rotate`` changes the value.
* ``Failing``: every login and issue fails, permanently (``BackendDenied``) or for now
  (``BackendUnavailable``).
* ``Slow``: an operation waits at a ``Gate`` until the test opens it.

Any of them can be told to fail an operation a number of times (``fail``) or to wait
(``gate``). Each records its calls as ``(operation, subject)``: the credential name for
login and issue, the lease id (or session ref) for renew and revoke. Time comes from
the harness clock.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendUnavailable,
    Capabilities,
    Issued,
    IssueRequest,
    Lease,
    Renewed,
    Session,
)
from agentcred.models.resolved import ResolvedCredential

LEASE = Capabilities(renewable=True, revocable=True, static=False)
UNRENEWABLE = Capabilities(renewable=False, revocable=True, static=False)
STATIC = Capabilities(renewable=False, revocable=False, static=True)
SESSION_LIFE = datetime.timedelta(hours=1)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class BackendCall:
    op: str  # login, issue, renew, revoke
    subject: str  # the credential (login, issue) or the lease id / session ref (renew, revoke)


class Gate:
    """Holds an operation until ``open()``; ``entered`` is set once a call is waiting."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self._open = asyncio.Event()

    async def passing(self) -> None:
        self.entered.set()
        await self._open.wait()

    def open(self) -> None:
        self._open.set()


class FakeBackend:
    """What every fake shares: calls recorded, failures and gates per operation."""

    caps = LEASE

    def __init__(self) -> None:
        self.kind = "fake"
        self.clock: Callable[[], datetime.datetime] = _utcnow
        self.calls: list[BackendCall] = []
        self.live: dict[str, datetime.datetime] = {}  # lease id -> expiry, until revoked
        self._failures: dict[str, list[tuple[BackendError, int | None]]] = {}
        self._gates: dict[str, Gate] = {}
        self._count = 0

    def bind(self, kind: str, clock: Callable[[], datetime.datetime]) -> None:
        self.kind, self.clock = kind, clock

    def fail(self, op: str, error: BackendError, times: int | None = 1) -> None:
        """The next ``times`` calls of ``op`` raise ``error`` (None: every call)."""
        self._failures.setdefault(op, []).append((error, times))

    def heal(self) -> None:
        """Forget every failure still queued: the backend is back."""
        self._failures.clear()

    def gate(self, op: str) -> Gate:
        gate = self._gates[op] = Gate()
        return gate

    def take(self) -> list[tuple[str, str]]:
        """The calls made since the last ``take``."""
        calls, self.calls = self.calls, []
        return [(c.op, c.subject) for c in calls]

    async def _enter(self, op: str, subject: str) -> None:
        self.calls.append(BackendCall(op, subject))
        gate = self._gates.get(op)
        if gate is not None:
            await gate.passing()
        queued = self._failures.get(op) or []
        if queued:
            error, times = queued[0]
            if times is not None:
                queued[0] = (error, times - 1)
                if times - 1 <= 0:
                    queued.pop(0)
            raise error

    def _next(self) -> int:
        self._count += 1
        return self._count

    # -- the Backend protocol ----------------------------------------------------------

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return self.caps

    def validate(self, spec: ResolvedCredential) -> None:
        return None

    async def check(self, spec: ResolvedCredential) -> None:
        await self._enter("check", spec.backend_kind)

    async def issue(self, request: IssueRequest) -> Issued:
        raise NotImplementedError  # each fake issues its own way

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        raise NotImplementedError

    async def revoke(self, lease: Lease) -> None:
        subject = lease.lease_id or (lease.session.ref if lease.session else "")
        await self._enter("revoke", subject)
        self.live.pop(lease.lease_id, None)

    async def aclose(self) -> None:
        return None


class RenewableLease(FakeBackend):
    """A session backend whose leases renew in place (Vault's dynamic secrets)."""

    caps = LEASE

    def __init__(self, *, max_life: datetime.timedelta | None = None, value: str = "v1") -> None:
        super().__init__()
        self.max_life = max_life  # a renewal beyond issue + max_life is capped
        self.value = value  # what a KV read returns
        self.issued_at: dict[str, datetime.datetime] = {}

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return STATIC if spec.vault is not None and spec.vault.kv is not None else self.caps

    async def login(self, request: IssueRequest) -> Session:
        await self._enter("login", request.credential)
        await request.identity.token_for("vault")  # the agent's TokenRequest, as Vault's
        n = self._next()
        return Session(f"accessor-{n}", f"session-{n}", self.clock() + SESSION_LIFE)

    async def issue_with(self, request: IssueRequest, session: Session) -> Issued:
        await self._enter("issue", request.credential)
        now = self.clock()
        if self.capabilities(request.spec).static:
            return Issued({"value": self.value}, f"kv-{self.value}", now, None, False)
        lease_id = f"lease-{self._next()}"
        expires = now + request.ttl
        self.live[lease_id], self.issued_at[lease_id] = expires, now
        data = {"username": f"user-{lease_id}", "password": f"pw-{lease_id}"}
        return Issued(data, lease_id, now, expires, self.caps.renewable, session=session)

    async def issue(self, request: IssueRequest) -> Issued:
        if self.capabilities(request.spec).static:  # a static read: no session kept
            await request.identity.token_for("vault")
            issued = await self.issue_with(request, Session("", ""))
            return issued
        return await self.issue_with(request, await self.login(request))

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        await self._enter("renew", lease.lease_id)
        if lease.lease_id not in self.live:
            raise BackendDenied(f"lease {lease.lease_id} is not live")
        now = self.clock()
        expires, capped = now + ttl, False
        started = self.issued_at.get(lease.lease_id, now)
        if self.max_life is not None and expires > started + self.max_life:
            expires, capped = started + self.max_life, True
        self.live[lease.lease_id] = expires
        return Renewed(expires_at=expires, capped=capped)


class UnrenewableLease(RenewableLease):
    """A session backend whose leases are re-issued, never renewed."""

    caps = UNRENEWABLE

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        await self._enter("renew", lease.lease_id)
        raise BackendInvalidConfig("these leases cannot be renewed")


class StaticSecret(FakeBackend):
    """A stored value (Secrets Manager): read, re-read on a grid, nothing to revoke."""

    caps = STATIC

    def __init__(self, value: str = "v1") -> None:
        super().__init__()
        self.value = value

    def rotate(self, value: str) -> None:
        self.value = value

    async def issue(self, request: IssueRequest) -> Issued:
        await self._enter("issue", request.credential)
        return Issued({"value": self.value}, f"version-{self.value}", self.clock(), None, False)

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        raise BackendInvalidConfig("a static secret cannot be renewed")


class Failing(RenewableLease):
    """Every login and issue fails with ``error``."""

    def __init__(self, error: BackendError) -> None:
        super().__init__()
        for op in ("login", "issue"):
            self.fail(op, error, times=None)


def failing_permanently() -> Failing:
    return Failing(BackendDenied("permission denied"))


def failing_temporarily() -> Failing:
    return Failing(BackendUnavailable("connection refused", retry_after=5.0))


class Slow(RenewableLease):
    """A renewable lease whose issue waits at ``issuing`` until the test opens it."""

    def __init__(self) -> None:
        super().__init__()
        self.issuing = self.gate("issue")
