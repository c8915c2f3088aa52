"""The small interface every credential backend implements, and its typed outcomes.

A backend turns an AgentCredential's backend block plus the agent's identity into
credential fields (``issue``), extends them (``renew``) and ends them (``revoke``).
What a backend can do is declared in ``Capabilities`` rather than discovered from
"not supported" errors, so the lifecycle code plans renewals and re-issues up front.
Backends never import kopf or the Kubernetes layer: what they need from the cluster
(a ServiceAccount token, a referenced Secret's value) arrives in ``IssueRequest``.
Every error here is named ``Backend*`` (the Kubernetes layer's are ``Kube*``), so both
can be imported side by side; ``reason`` is what conditions, Events and the audit show.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from agentcred.models.api_names import Reason
from agentcred.models.ceiling import Validity
from agentcred.models.errors import OperatorError
from agentcred.models.resolved import ResolvedCredential


class BackendError(OperatorError):
    """Base of every backend failure. Messages never contain a credential value.
    Temporary unless a subclass says ``permanent`` (models/errors.py)."""

    reason: str = Reason.BACKEND_ERROR


class BackendDenied(BackendError):
    """The backend refused this identity or path (403, access denied). Needs a config change."""

    reason: str = Reason.DENIED
    permanent = True


class BackendNotFound(BackendError):
    """The path, role, secret or version does not exist. Needs a config change."""

    reason: str = Reason.NOT_FOUND
    permanent = True


class BackendInvalidConfig(BackendError):
    """The backend block cannot work as written (e.g. malformed response, bad mount)."""

    reason: str = Reason.INVALID_CONFIG
    permanent = True


class BackendUnavailable(BackendError):
    """The backend could not be reached or answered 5xx/429: retry with backoff."""

    reason: str = Reason.BACKEND_UNAVAILABLE

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Capabilities:
    renewable: bool  # leases can be extended in place
    revocable: bool  # the backend can end a credential before its expiry
    static: bool  # a read of a stored value (refresh on an interval) rather than a lease


@dataclass(frozen=True)
class Identity:
    """Who asks: the task's namespace and ServiceAccount, and how to prove it."""

    namespace: str
    service_account: str
    task: str
    task_uid: str
    # Returns a short-lived TokenRequest token of the ServiceAccount for an audience.
    token_for: Callable[[str], Awaitable[str]]
    # Returns the value of key ``key`` of Secret ``name`` in the task's namespace.
    secret_value: Callable[[str, str], Awaitable[str]]


@dataclass(frozen=True)
class IssueRequest:
    credential: str  # AgentCredential name
    spec: ResolvedCredential
    identity: Identity
    ttl: datetime.timedelta  # lease length wanted (already capped by the task's deadline)
    correlation_id: str
    deadline: datetime.datetime | None = None  # the task's (STS caps its duration by it)


@dataclass(frozen=True)
class Session:
    """Backend-side state needed to renew or revoke later (e.g. a per-credential Vault token).

    ``secret`` is kept in the cluster in an operator-owned Secret, never in status or logs;
    ``ref`` is a non-secret handle that may be shown (e.g. a token accessor).
    """

    ref: str
    secret: str
    expires_at: datetime.datetime | None = None


@dataclass(frozen=True)
class Issued:
    data: Mapping[str, str] = field(repr=False)  # credential fields: never logged
    lease_id: str  # backend lease / version id (not secret)
    issued_at: datetime.datetime
    expires_at: datetime.datetime | None  # None: no expiry known (static secrets)
    renewable: bool
    session: Session | None = field(default=None, repr=False)
    # Every expiry the backend's answer carried (lease, token, certificate, STS session),
    # checked against the backend's maxTTL before anything is written (models/ceiling.py).
    validity: tuple[Validity, ...] = ()
    unleased: bool = False  # a dynamic answer without a lease: nothing can renew or revoke it

    def __repr__(self) -> str:  # keep values out of any accidental repr
        keys = sorted(self.data)
        return f"Issued(lease_id={self.lease_id!r}, expires_at={self.expires_at!r}, keys={keys})"


@dataclass(frozen=True)
class Lease:
    """An issued credential as ``renew`` and ``revoke`` need it: what was recorded at issue.

    ``spec``: the credential as it was resolved at issue (the connection it was issued
    under, never a later-edited backend's); ``lease_id``: ``Issued.lease_id`` (the
    backend's lease or version id; ``""`` when there is none yet, e.g. undoing a login);
    ``session``: ``Issued.session`` (None when the backend keeps none); ``correlation_id``:
    the id of the operation renewing or revoking, sent along where the backend allows.
    """

    spec: ResolvedCredential
    lease_id: str
    session: Session | None = field(repr=False)
    correlation_id: str


@dataclass(frozen=True)
class Renewed:
    expires_at: datetime.datetime
    capped: bool  # the backend granted less than asked (max TTL reached)
    validity: tuple[Validity, ...] = ()  # what the renewal granted, as Issued.validity


class Backend(Protocol):
    """One credential backend kind. Its module also offers a factory taking
    ``BackendSettings`` (``<Class>.from_settings``), named in ``registry.FACTORIES``."""

    kind: str

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        """What this backend can do for this spec (Vault dynamic vs. KV differ)."""

    def validate(self, spec: ResolvedCredential) -> None:
        """Pure checks beyond the schema; raise BackendInvalidConfig."""

    async def check(self, spec: ResolvedCredential) -> None:
        """Live reachability check for the Ready condition; raise a BackendError."""

    async def issue(self, request: IssueRequest) -> Issued:
        """Issue (or read) a credential as ``request.identity``."""

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        """Extend a lease (only if capabilities.renewable)."""

    async def revoke(self, lease: Lease) -> None:
        """End a credential; already gone counts as success (only if capabilities.revocable)."""

    async def aclose(self) -> None:
        """Release the SDK clients and the thread pool (operator shutdown); idempotent."""


@runtime_checkable
class SessionBackend(Backend, Protocol):
    """A backend whose credentials hang off a per-credential session (Vault: a token).

    ``issue`` is split in two so that the caller can persist the session *before* the
    lease exists: ``login`` creates the session, the caller stores ``Session.secret``
    (an operator-owned Secret), then ``issue_with`` issues under it. Whatever happens
    after ``login``, the stored session finds every lease made with it, and ``revoke``
    with it ends them. ``issue`` is ``login`` then ``issue_with`` without that pause.
    """

    async def login(self, request: IssueRequest) -> Session:
        """Authenticate as ``request.identity``; return a fresh session for one credential."""

    async def issue_with(self, request: IssueRequest, session: Session) -> Issued:
        """Issue (or read) under ``session``; ``Issued.session`` is None if none is kept."""


class NoLeaseLifecycle:
    """``renew``/``revoke`` for backends whose credentials have no lease to extend or end.

    Static secrets are re-read every ``refreshInterval``; STS sessions are re-issued
    before they expire and die at their expiry. Revoking is a no-op for both (there is
    nothing on the backend to end), renewing is a configuration error.
    """

    what_cannot_renew = "this backend's credentials"

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        raise BackendInvalidConfig(
            f"{self.what_cannot_renew} cannot be renewed: the operator "
            "re-reads or re-issues them instead"
        )

    async def revoke(self, lease: Lease) -> None:
        return None
