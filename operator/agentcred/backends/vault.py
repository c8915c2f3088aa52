"""HashiCorp Vault / OpenBao: every credential under its own token, logged in as the agent.

Why one token per credential. For every credential it issues, the operator logs in *as
the agent* (Kubernetes auth with a TokenRequest token of the task's ServiceAccount, an
AppRole, or a child of a token kept in a Secret) and reads the dynamic path with the
token it gets. Vault makes that token the parent of the lease, so:

* revoking the token (``auth/token/revoke-self``, allowed by Vault's ``default``
  policy) revokes the lease with it: ``revoke`` needs nothing but the token;
* the caller stores the token (``Session.secret``) in a Kubernetes Secret *before* the
  lease exists (``login``, persist, then ``issue_with``), so every lease is findable
  from the cluster, even one the operator issued but died before recording;
* if the operator is down, the token's TTL bounds the lease: right after login the
  token is renewed with ``increment`` = the credential's TTL (which may shorten it; no
  token lives longer than the task needs), and Vault revokes a token's leases when it
  expires. Vault does not shorten a lease's own TTL to its token's (seen on OpenBao
  2.7.2), so ``expires_at`` is the earlier of the two.

What the Vault side must allow:

* auth roles must issue renewable *service* tokens (the default) carrying the
  ``default`` policy (for ``renew-self``, ``revoke-self`` and ``sys/leases/renew``).
  Batch or non-renewable tokens are refused for dynamic credentials (BackendInvalidConfig):
  revoking them cannot end a lease, nor can their TTL be set to the credential's.
* ``tokenSecretRef``: the token in the Secret only creates a child token
  (``auth/token/create``: renewable, TTL = the credential's, metadata naming the task),
  so its policy must grant ``update`` on ``auth/token/create``; the child inherits its
  policies and is revoked whenever the parent is.

Revocation is idempotent: Vault answers 403 "permission denied" for a token that has
expired or was revoked, and ``revoke`` counts that as success. Static KV reads keep no
session (their login token is revoked right after the read); ``revoke`` of one returns
at once.

Paths a token has no policy for answer 403 (BackendDenied), before Vault looks whether they
exist; 404 (BackendNotFound) comes only from paths the policy allows (e.g. a missing KV key).

Every request carries ``X-Correlation-Id``; Vault's audit devices record it once it
is listed with ``vault write sys/config/auditing/request-headers/X-Correlation-Id
hmac=false``, tying an audit entry to the task event that caused it.
``spec.vault.namespace`` is sent as ``X-Vault-Namespace``. TLS is verified against the
system CAs, or the CA bundle passed as ``verify`` (``REQUESTS_CA_BUNDLE`` works too).

hvac is synchronous: every call runs in this backend's :class:`BlockingRunner`, never
on the event loop, and each address has one pooled ``requests.Session``. Failures are
mapped to agentcred's typed errors in one function, :func:`vault_error`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import hvac
import requests
from hvac import exceptions as vault_exc
from hvac.adapters import JSONAdapter
from requests.adapters import HTTPAdapter

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Capabilities,
    Issued,
    IssueRequest,
    Lease,
    Renewed,
    Session,
)
from agentcred.backends.blocking import BlockingRunner
from agentcred.backends.lru import DEFAULT_SIZE, LruCache
from agentcred.backends.pooled import STATIC, PooledBackend, log_issue, unrenewable
from agentcred.models.ceiling import Validity, certificate_validity, seconds_validity
from agentcred.models.errors import NotAllowed, SpecError
from agentcred.models.policy import check_url
from agentcred.models.resolved import (
    ResolvedCredential,
    SecretKeyRef,
    VaultAppRoleAuth,
    VaultKubernetesAuth,
    VaultSpec,
)

log = logging.getLogger(__name__)

KIND = "vault"
CORRELATION_HEADER = "X-Correlation-Id"
MAX_ERROR_TEXT = 300
CAPPED_BELOW = 0.9  # a renewal granting less than this share of the TTL asked is capped
HEALTHY = frozenset({200, 429, 473})  # active, standby, performance standby
UNHEALTHY = {501: "not initialized", 503: "sealed", 472: "a disaster-recovery secondary"}
CREATE_CHILD_HINT = (
    " (tokenSecretRef: the token is used to create a child token per credential, so its"
    " policy must allow 'update' on auth/token/create; it may also have expired)"
)
SESSION_GONE_HINT = " (the credential's token has expired or was revoked: issue a new one)"
RETRYABLE = (
    vault_exc.InternalServerError,
    vault_exc.VaultDown,
    vault_exc.BadGateway,
    vault_exc.RateLimitExceeded,
    vault_exc.VaultNotInitialized,
    vault_exc.PreconditionFailed,
)
_MULTIERROR = re.compile(r"^\d+ errors? occurred:\s*\*\s*")


_MISSING = re.compile(r"unknown role|role not found|role .* does not exist|no such", re.I)


def vault_error(
    exc: Exception, action: str, *, login: bool = False, hint: str = ""
) -> BackendError:
    """The typed error for ``exc``, raised by hvac or requests while doing ``action``.

    Raise the result ``from exc``. Messages quote Vault's own error text (which never
    holds a secret), cut to 300 characters, and never a request body. ``login``: a 400
    on a login (unknown role, SA not bound, bad secret id) is a refusal, not a bad spec.
    """
    text = _error_text(exc)
    said = f": {text}" if text else ""
    if isinstance(exc, vault_exc.Forbidden | vault_exc.Unauthorized):
        return BackendDenied(f"Vault denied {action}{said}{hint}")
    if isinstance(exc, vault_exc.InvalidPath):
        return BackendNotFound(f"Vault found nothing for {action}{said}")
    if isinstance(exc, vault_exc.InvalidRequest):
        if login:
            return BackendDenied(f"Vault refused {action}{said}")
        if _MISSING.search(text):  # engines answer 400 for a role that does not exist
            return BackendNotFound(f"Vault found nothing for {action}{said}")
        return BackendInvalidConfig(f"Vault rejected {action}{said}")
    if isinstance(exc, RETRYABLE):
        return BackendUnavailable(f"Vault could not serve {action} now{said}")
    if isinstance(exc, vault_exc.UnexpectedError):  # a status hvac has no class for
        status = getattr(exc, "status_code", None)
        if status is not None and 400 <= status < 500:  # e.g. 405 unsupported operation
            return BackendInvalidConfig(f"Vault rejected {action} (HTTP {status}){said}")
        return BackendUnavailable(
            f"Vault could not serve {action} now (HTTP {status or '?'}){said}"
        )
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return BackendUnavailable(f"cannot reach Vault for {action}{said}")
    return BackendInvalidConfig(f"cannot do {action}: {type(exc).__name__}{said}")


def _error_text(exc: Exception) -> str:
    if isinstance(exc, vault_exc.VaultError):
        parts = [str(e) for e in exc.errors or [] if e] or [str(exc.args[0] or "")]
    else:
        parts = [str(exc)]
    text = "; ".join(_MULTIERROR.sub("", " ".join(p.split())) for p in parts if p.strip())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


class _CorrelatedAdapter(JSONAdapter):  # type: ignore[misc]  # hvac ships no type hints
    """hvac's JSON adapter, plus ``X-Correlation-Id`` on requests and the status on errors."""

    def __init__(self, *args: Any, correlation_id: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.correlation_id = correlation_id

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        if self.correlation_id:
            headers = {**(headers or {}), CORRELATION_HEADER: self.correlation_id}
        return super().request(method, url, headers=headers, **kwargs)

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        """hvac's errors carry no status code; keep it for :func:`vault_error`."""
        try:
            super()._raise_for_error(method, url, response)
        except vault_exc.VaultError as exc:
            exc.status_code = response.status_code
            raise


@dataclass(frozen=True)
class _Token:
    token: str = field(repr=False)
    accessor: str
    ttl: int  # seconds; 0: no expiry
    renewable: bool
    batch: bool


@dataclass(frozen=True)
class _LeasedRead:
    data: Mapping[str, str] = field(repr=False)
    lease_id: str
    duration: int  # seconds; 0: no expiry
    renewable: bool
    certificate: Validity | None = None  # a PKI-style answer's certificate end
    token: int | None = None  # seconds of a token in the answer (an ``auth`` block)


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
        self._verify = verify
        self._sessions: LruCache[tuple[str, str | None], requests.Session] = LruCache(cache_size)
        self._transport = transport or self._pooled_transport

    # -- declared abilities and checks ------------------------------------------------

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        if spec.vault is not None and spec.vault.kv is not None:
            return STATIC
        return Capabilities(renewable=True, revocable=True, static=False)

    def validate(self, spec: ResolvedCredential) -> None:
        self._target(spec)

    async def check(self, spec: ResolvedCredential) -> None:
        vault, address = self._target(spec)
        client = self._client(vault, "", root=True)  # sys/health: root namespace
        status = await self._call(f"checking {address}/v1/sys/health", _health_status, client)
        if status not in HEALTHY:
            state = UNHEALTHY.get(status, f"unhealthy (HTTP {status})")
            raise BackendUnavailable(f"Vault at {address} is {state}")

    # -- issue ---------------------------------------------------------------------------

    async def issue(self, request: IssueRequest) -> Issued:
        return await self.issue_with(request, await self.login(request))

    async def login(self, request: IssueRequest) -> Session:
        vault, address = self._target(request.spec)
        ttl = _seconds(request.ttl)
        started = _now()
        token = await self._authenticate(request, vault, address, ttl)
        token = await self._fit_ttl(request, vault, address, token, ttl)
        log_issue(log, request, "Vault session %s opened", token.accessor)
        return Session(
            ref=token.accessor, secret=token.token, expires_at=_after(started, token.ttl)
        )

    async def issue_with(self, request: IssueRequest, session: Session) -> Issued:
        vault, _ = self._target(request.spec)
        client = self._client(vault, request.correlation_id, session.secret)
        if vault.kv is not None:
            try:
                return await self._read_kv(vault, client)
            finally:  # a static read keeps no session
                await self._revoke_quietly(client, session.ref)
        try:
            return await self._read_dynamic(request, vault, client, session)
        except BaseException:  # the lease (if any) must not outlive a failed issue
            await self._revoke_quietly(client, session.ref)
            raise

    # -- renew and revoke ----------------------------------------------------------------

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        vault, _ = self._target(lease.spec)
        session, issued_lease = lease.session, lease.lease_id
        if session is None:
            raise BackendInvalidConfig("a Vault lease can only be renewed with its session token")
        seconds = _seconds(ttl)
        client = self._client(vault, lease.correlation_id, session.secret)
        started = _now()
        action = "renewing the credential's token (auth/token/renew-self)"
        body = await self._call(
            action, client.auth.token.renew_self, increment=seconds, hint=SESSION_GONE_HINT
        )
        granted = [_token_from(body, action).ttl]
        validity: tuple[Validity, ...] = ()
        if issued_lease:
            action = f"renewing lease {issued_lease}"
            body = await self._call(
                action, client.sys.renew_lease, lease_id=issued_lease, increment=seconds
            )
            granted.append(_int(_body(body, action).get("lease_duration")))
            validity = (seconds_validity("renewed lease", started, granted[-1]),)
        shortest = min((g for g in granted if g > 0), default=seconds)
        return Renewed(
            expires_at=started + datetime.timedelta(seconds=shortest),
            capped=shortest < CAPPED_BELOW * seconds,
            validity=validity,
        )

    async def revoke(self, lease: Lease) -> None:
        session = lease.session
        if session is None:
            return  # static KV read: its token was revoked right after the read
        vault, _ = self._target(lease.spec)
        client = self._client(vault, lease.correlation_id, session.secret)
        await self._revoke_token(client)
        log.debug("Vault session %s revoked with lease %s", session.ref, lease.lease_id)

    async def aclose(self) -> None:
        """Release the pooled connections, and the thread pool unless it was given."""
        self._close_runner()
        for http in self._sessions.drain():
            http.close()

    # -- login steps ---------------------------------------------------------------------

    async def _authenticate(
        self, request: IssueRequest, vault: VaultSpec, address: str, ttl: int
    ) -> _Token:
        """Log in as the agent, the way the spec says: a fresh token for this credential."""
        client = self._client(vault, request.correlation_id)
        if vault.auth.kubernetes is not None:
            return await self._login_kubernetes(request, vault.auth.kubernetes, client)
        if vault.auth.app_role is not None:
            return await self._login_approle(request, vault.auth.app_role, client)
        ref = vault.auth.token_secret_ref
        assert ref is not None  # _target checked that exactly one method is set
        parent = await request.identity.secret_value(ref.name, ref.key)
        client = self._client(vault, request.correlation_id, parent)
        return await self._create_child(request, ref, client, ttl)

    async def _login_kubernetes(
        self, request: IssueRequest, k8s: VaultKubernetesAuth, client: Any
    ) -> _Token:
        identity = request.identity
        jwt = await identity.token_for(k8s.audience)
        action = (
            f"the login at auth/{k8s.mount_path}/login as role {k8s.role!r} "
            f"(ServiceAccount {identity.namespace}/{identity.service_account})"
        )
        login = client.auth.kubernetes.login
        return await self._login(action, login, k8s.mount_path, role=k8s.role, jwt=jwt)

    async def _login_approle(
        self, request: IssueRequest, approle: VaultAppRoleAuth, client: Any
    ) -> _Token:
        ref = approle.secret_id_ref
        secret_id = await request.identity.secret_value(ref.name, ref.key)
        action = f"the AppRole login at auth/{approle.mount_path}/login"
        login = client.auth.approle.login
        credentials = {"role_id": approle.role_id, "secret_id": secret_id}
        return await self._login(action, login, approle.mount_path, **credentials)

    async def _login(
        self, action: str, login: Callable[..., Any], mount_point: str, **credentials: str
    ) -> _Token:
        """One login call (never with the client's own token) and the token it returns."""
        body = await self._call(
            action, login, use_token=False, mount_point=mount_point, login=True, **credentials
        )
        return _token_from(body, action)

    async def _create_child(
        self, request: IssueRequest, ref: SecretKeyRef, client: Any, ttl: int
    ) -> _Token:
        action = f"creating a child token with the token of Secret {ref.name}/{ref.key}"
        body = await self._call(
            action,
            client.auth.token.create,
            ttl=f"{ttl}s",
            renewable=True,
            meta=_token_metadata(request),
            display_name=f"agentcred-{request.identity.task}",
            hint=CREATE_CHILD_HINT,
        )
        return _token_from(body, action)

    async def _fit_ttl(
        self, request: IssueRequest, vault: VaultSpec, address: str, token: _Token, ttl: int
    ) -> _Token:
        """Set the new token's TTL to the credential's (renew-self may shorten it)."""
        if vault.kv is not None:
            return token  # a static read uses the token for a moment only: no renew-self
        client = self._client(vault, request.correlation_id, token.token)
        if token.batch or not token.renewable:
            await self._revoke_quietly(client, token.accessor)
            raise BackendInvalidConfig(
                "the Vault auth role issues batch or non-renewable tokens; dynamic credentials "
                "need renewable service tokens (revoking one ends its leases)"
            )
        action = "setting the new token's TTL (auth/token/renew-self)"
        try:
            body = await self._call(action, client.auth.token.renew_self, increment=ttl)
        except BaseException:
            await self._revoke_quietly(client, token.accessor)
            raise
        return replace(token, ttl=_token_from(body, action).ttl)

    # -- reads ---------------------------------------------------------------------------

    async def _read_dynamic(
        self, request: IssueRequest, vault: VaultSpec, client: Any, session: Session
    ) -> Issued:
        dynamic = vault.dynamic
        assert dynamic is not None  # _target checked: exactly one of dynamic or kv
        ttl = _seconds(request.ttl)
        issued_at = _now()
        action = f"{dynamic.http_method} {dynamic.path}"
        method, path, params = dynamic.http_method, dynamic.path, dynamic.params
        lease = _lease_from(await self._call(action, _send, client, method, path, params), action)
        if lease.renewable and lease.lease_id and lease.duration != ttl:
            action = f"renewing lease {lease.lease_id} to the credential's TTL"
            renew = client.sys.renew_lease
            body = await self._call(action, renew, lease_id=lease.lease_id, increment=ttl)
            lease = replace(lease, duration=_int(_body(body, action).get("lease_duration")))
        lease_end = _after(issued_at, lease.duration)
        # Only a lease is ended with its token; a response without one ends on its own.
        token_end = session.expires_at if lease.lease_id else None
        validity = _validity(lease, issued_at)
        cert_end = lease.certificate.until if lease.certificate else None
        return Issued(
            data=lease.data,
            lease_id=lease.lease_id,
            issued_at=issued_at,
            expires_at=_earliest(lease_end, token_end, cert_end),
            renewable=lease.renewable and bool(lease.lease_id),
            session=session,
            validity=validity,
            unleased=not lease.lease_id,
        )

    async def _read_kv(self, vault: VaultSpec, client: Any) -> Issued:
        kv = vault.kv
        assert kv is not None
        issued_at = _now()
        which = f"version {kv.version}" if kv.version else "latest version"
        action = f"reading KV v2 {kv.mount}/{kv.path} ({which})"
        body = _body(
            await self._call(
                action,
                client.secrets.kv.v2.read_secret_version,
                path=kv.path,
                version=kv.version or None,
                mount_point=kv.mount,
                raise_on_deleted_version=True,
            ),
            action,
        )
        try:
            data, version = body["data"]["data"], int(body["data"]["metadata"]["version"])
        except (KeyError, TypeError, ValueError):
            raise BackendInvalidConfig(
                f"Vault's answer to {action} has no data or version"
            ) from None
        return unrenewable(_fields(data, action), f"kv:{kv.mount}/{kv.path}#{version}", issued_at)

    # -- plumbing ------------------------------------------------------------------------

    async def _revoke_token(self, client: Any) -> None:
        action = "revoking the credential's token (auth/token/revoke-self)"
        try:
            await self._call(action, client.auth.token.revoke_self)
        except BackendDenied:
            return  # 403: the token has expired or was revoked already, and its leases too

    async def _revoke_quietly(self, client: Any, accessor: str) -> None:
        """Best effort: whatever is left is ended by the token's TTL or a later revoke."""
        try:
            await self._revoke_token(client)
        except BackendError as exc:
            log.warning("could not revoke Vault token %s now: %s", accessor, exc)

    async def _call(
        self,
        action: str,
        fn: Callable[..., Any],
        *args: Any,
        login: bool = False,
        hint: str = "",
        **kwargs: Any,
    ) -> Any:
        """Run one blocking hvac call in the pool; map its failure to a typed error."""
        try:
            return await self._runner.run(fn, *args, **kwargs)
        except (vault_exc.VaultError, requests.RequestException) as exc:
            raise vault_error(exc, action, login=login, hint=hint) from exc

    def _client(
        self, vault: VaultSpec, correlation_id: str, token: str = "", *, root: bool = False
    ) -> Any:
        """An hvac client on the pooled session of the backend's address (cheap; no I/O).

        ``token`` is never None: hvac would fall back to ``VAULT_TOKEN`` / ``~/.vault-token``,
        and the operator's own identity must not be used where the agent's can. Redirects
        are never followed: a token goes to the address the platform wrote, nowhere else.
        """
        return hvac.Client(
            url=vault.address.rstrip("/"),
            token=token,
            namespace=None if root else (vault.namespace or None),
            session=self._http(vault.address.rstrip("/"), vault.ca_bundle),
            timeout=self._timeout,
            allow_redirects=False,
            adapter=_CorrelatedAdapter,
            correlation_id=correlation_id,
        )

    def _http(self, address: str, ca_bundle: str | None) -> requests.Session:
        def make() -> requests.Session:
            http = requests.Session()
            # No per-call environment lookups (~/.netrc, proxy and CA variables): the
            # address and its CA are the platform's, written on the CredentialBackend.
            http.trust_env = False
            http.verify = _ca_file(ca_bundle) if ca_bundle else self._verify
            http.max_redirects = 0
            pool = self._transport()
            http.mount("http://", pool)
            http.mount("https://", pool)
            return http

        return self._sessions.get_or_make((address, ca_bundle), make)

    def _pooled_transport(self) -> HTTPAdapter:
        return HTTPAdapter(pool_connections=1, pool_maxsize=self._runner.concurrency)

    def _target(self, spec: ResolvedCredential) -> tuple[VaultSpec, str]:
        """The Vault block and address of ``spec``, checked without I/O (``validate``)."""
        vault = spec.vault
        if vault is None:
            raise BackendInvalidConfig("spec.vault is not set: this is not a Vault credential")
        address = vault.address.rstrip("/")
        try:  # the same rule the policy applied when the credential was resolved
            check_url("", "vault.address", address, spec.allow_insecure_http)
        except (SpecError, NotAllowed) as exc:
            raise BackendInvalidConfig(f"the backend's {exc}") from None
        auth = vault.auth
        if sum(m is not None for m in (auth.kubernetes, auth.app_role, auth.token_secret_ref)) != 1:
            raise BackendInvalidConfig("vault.auth needs exactly one of kubernetes, appRole, token")
        if (vault.dynamic is None) == (vault.kv is None):
            raise BackendInvalidConfig("spec.vault needs exactly one of dynamic or kv")
        return vault, address


def _ca_file(pem: str) -> str:
    """A backend's ``caBundle`` as a file for requests (written once, named by its hash)."""
    path = os.path.join(
        tempfile.gettempdir(), f"agentcred-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    )
    if not os.path.exists(path):
        with open(path, "w", encoding="ascii") as out:
            out.write(pem)
    return path


# -- blocking helpers (run in the pool) and response parsing -------------------------------


def _send(client: Any, method: str, path: str, params: Mapping[str, Any] | None) -> Any:
    """A dynamic read: GET with ``params`` as the query, other methods with a JSON body."""
    url = f"/v1/{path.strip('/')}"
    if method.upper() == "GET":
        return client.adapter.request("get", url, params=dict(params or {}))
    return client.adapter.request(method.lower(), url, json=dict(params or {}))


def _health_status(client: Any) -> int:
    params = {"standbyok": "true", "perfstandbyok": "true"}
    response = client.adapter.get("/v1/sys/health", params=params, raise_exception=False)
    return 200 if isinstance(response, dict) else int(response.status_code)


def _body(response: Any, action: str) -> dict[str, Any]:
    """hvac's JSON adapter returns a dict for a 200 with JSON, the raw response otherwise."""
    if isinstance(response, dict):
        return response
    if getattr(response, "status_code", None) == 204:
        return {}
    status = getattr(response, "status_code", "?")
    raise BackendInvalidConfig(f"Vault answered {action} with HTTP {status} and no JSON body")


def _token_from(response: Any, action: str) -> _Token:
    try:
        auth = _body(response, action)["auth"]
        return _Token(
            token=str(auth["client_token"]),
            accessor=str(auth.get("accessor") or ""),
            ttl=_int(auth.get("lease_duration")),
            renewable=bool(auth.get("renewable")),
            batch=auth.get("token_type") == "batch",
        )
    except (KeyError, TypeError, AttributeError):
        raise BackendInvalidConfig(f"Vault's answer to {action} holds no token") from None


def _lease_from(response: Any, action: str) -> _LeasedRead:
    body = _body(response, action)
    raw = body.get("data")
    auth = body.get("auth")
    return _LeasedRead(
        data=_fields(raw, action),
        lease_id=str(body.get("lease_id") or ""),
        duration=_int(body.get("lease_duration")),
        renewable=bool(body.get("renewable")),
        certificate=certificate_validity(raw) if isinstance(raw, Mapping) else None,
        token=_int(auth.get("lease_duration")) if isinstance(auth, Mapping) else None,
    )


def _validity(lease: _LeasedRead, issued_at: datetime.datetime) -> tuple[Validity, ...]:
    """Every expiry a dynamic answer carries, for the maxTTL check (models/ceiling.py)."""
    found = []
    if lease.lease_id:
        found.append(seconds_validity("lease", issued_at, lease.duration))
    if lease.token is not None:
        found.append(seconds_validity("token", issued_at, lease.token))
    if lease.certificate is not None:
        found.append(lease.certificate)
    return tuple(found)


def _fields(data: Any, action: str) -> dict[str, str]:
    """Credential fields as strings; other JSON values are kept as JSON text."""
    if not isinstance(data, Mapping) or not data:
        raise BackendInvalidConfig(f"Vault's answer to {action} holds no data fields")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def _token_metadata(request: IssueRequest) -> dict[str, str]:
    identity = request.identity
    return {
        "task": identity.task,
        "task_uid": identity.task_uid,
        "namespace": identity.namespace,
        "credential": request.credential,
    }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _seconds(ttl: datetime.timedelta) -> int:
    return max(1, math.ceil(ttl.total_seconds()))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _after(start: datetime.datetime, seconds: int) -> datetime.datetime | None:
    return start + datetime.timedelta(seconds=seconds) if seconds > 0 else None


def _earliest(*times: datetime.datetime | None) -> datetime.datetime | None:
    return min((t for t in times if t is not None), default=None)
