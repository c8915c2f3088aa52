"""``VaultBackend``: the Backend (and SessionBackend) interface, wired to the modules here.

Thin on purpose: each method checks the spec (``validation``), takes a client from the
``connection``, and hands over to the concern's module (``auth``, ``leases``, ``kv``,
``tokens``). One instance per operator.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from requests.adapters import HTTPAdapter

from agentcred.backends.base import (
    BackendInvalidConfig,
    BackendUnavailable,
    Capabilities,
    Issued,
    IssueRequest,
    Lease,
    Renewed,
    Session,
)
from agentcred.backends.blocking import BlockingRunner
from agentcred.backends.lru import DEFAULT_SIZE
from agentcred.backends.pooled import STATIC, PooledBackend, log_issue
from agentcred.backends.vault import auth, kv, leases
from agentcred.backends.vault.answers import after, now, seconds
from agentcred.backends.vault.connection import Connection, health_status
from agentcred.backends.vault.tokens import revoke_quietly, revoke_token
from agentcred.backends.vault.validation import target
from agentcred.models.resolved import ResolvedCredential

log = logging.getLogger(__name__)

KIND = "vault"
HEALTHY = frozenset({200, 429, 473})  # active, standby, performance standby
UNHEALTHY = {501: "not initialized", 503: "sealed", 472: "a disaster-recovery secondary"}


class VaultBackend(PooledBackend):
    """The Backend (and SessionBackend) for Vault and OpenBao; one instance per operator."""

    kind = KIND

    def __init__(
        self,
        *,
        concurrency: int = 16,
        cache_size: int = DEFAULT_SIZE,
        timeout: float = 30.0,
        verify: bool | str = True,
        runner: BlockingRunner | None = None,
        transport: Callable[[], HTTPAdapter] | None = None,
    ) -> None:
        """``verify``: a CA bundle path, or False (never in production); a backend's own
        ``caBundle`` replaces it for that backend's address. ``transport``: builds the
        ``requests`` adapter of each address's pool (retries, or a recorder in tests).
        """
        super().__init__(concurrency, cache_size, timeout=timeout, runner=runner)
        self._conn = Connection(
            self._runner,
            timeout=timeout,
            verify=verify,
            cache_size=cache_size,
            transport=transport,
        )

    # -- declared abilities and checks ------------------------------------------------

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        if spec.vault is not None and spec.vault.kv is not None:
            return STATIC
        return Capabilities(renewable=True, revocable=True, static=False)

    def validate(self, spec: ResolvedCredential) -> None:
        target(spec)

    async def check(self, spec: ResolvedCredential) -> None:
        vault, address = target(spec)
        client = self._conn.client(vault, "", root=True)  # sys/health: root namespace
        status = await self._conn.call(f"checking {address}/v1/sys/health", health_status, client)
        if status not in HEALTHY:
            state = UNHEALTHY.get(status, f"unhealthy (HTTP {status})")
            raise BackendUnavailable(f"Vault at {address} is {state}")

    # -- issue ---------------------------------------------------------------------------

    async def issue(self, request: IssueRequest) -> Issued:
        return await self.issue_with(request, await self.login(request))

    async def login(self, request: IssueRequest) -> Session:
        vault, _ = target(request.spec)
        ttl = seconds(request.ttl)
        started = now()
        token = await auth.authenticate(self._conn, request, vault, ttl)
        token = await auth.fit_ttl(self._conn, request, vault, token, ttl)
        log_issue(log, request, "Vault session %s opened", token.accessor)
        return Session(ref=token.accessor, secret=token.token, expires_at=after(started, token.ttl))

    async def issue_with(self, request: IssueRequest, session: Session) -> Issued:
        vault, _ = target(request.spec)
        client = self._conn.client(vault, request.correlation_id, session.secret)
        if vault.kv is not None:
            try:
                return await kv.read_kv(self._conn, vault, client)
            finally:  # a static read keeps no session
                await revoke_quietly(self._conn, client, session.ref)
        try:
            return await leases.read_dynamic(self._conn, request, vault, client, session)
        except BaseException:  # the lease (if any) must not outlive a failed issue
            await revoke_quietly(self._conn, client, session.ref)
            raise

    # -- renew and revoke ----------------------------------------------------------------

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        vault, _ = target(lease.spec)
        session = lease.session
        if session is None:
            raise BackendInvalidConfig("a Vault lease can only be renewed with its session token")
        client = self._conn.client(vault, lease.correlation_id, session.secret)
        return await leases.renew(self._conn, client, lease.lease_id, ttl)

    async def revoke(self, lease: Lease) -> None:
        session = lease.session
        if session is None:
            return  # static KV read: its token was revoked right after the read
        vault, _ = target(lease.spec)
        client = self._conn.client(vault, lease.correlation_id, session.secret)
        await revoke_token(self._conn, client)
        log.debug("Vault session %s revoked with lease %s", session.ref, lease.lease_id)

    async def aclose(self) -> None:
        """Release the pooled connections, and the thread pool unless it was given."""
        self._close_runner()
        self._conn.close()
