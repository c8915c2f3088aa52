"""GCP Secret Manager: a static secret version, read with the operator's Google identity.

What is read. ``spec.gcpSecretManager`` names ``projects/<project>/secrets/<secret>/
versions/<version>``, ``version`` being ``latest`` (the default) or a version number.
Secret Manager itself never serves a disabled or destroyed version: accessing one
answers FAILED_PRECONDITION (``BackendInvalidConfig`` here). ``latest`` is, as Google
documents it, the most recently created version, so a new version reaches tasks at
their next refresh, and disabling the newest version makes ``latest`` fail rather
than fall back (roll back by adding a version, or pin one; drongo, the test
emulator, falls back to the newest enabled version instead). The payload becomes
fields as :mod:`agentcred.backends.payload` says: a JSON object gives
one key per field, anything else the single key ``value`` (base64 text when the bytes
are not UTF-8). When the response carries ``data_crc32c`` (Secret Manager sets it;
some emulators do not) the payload is checked against it, and a mismatch is
``BackendUnavailable`` (corrupted in transit: read again). ``lease_id`` is the resolved
version name the server returns (``projects/<project>/secrets/<secret>/versions/3``;
Secret Manager may spell the project by number there). There is no lease: nothing
to renew (``renew`` raises ``BackendInvalidConfig``) or revoke (``revoke`` returns at once).

Who reads it: Application Default Credentials, i.e. on GKE the Workload Identity of
the operator's ServiceAccount, elsewhere ``GOOGLE_APPLICATION_CREDENTIALS`` or the
metadata server. The one exception is a plain ``http://`` ``spec.endpoint``: that is a
local emulator or a plaintext hop (TLS is never optional towards Google), so the
client there uses ``AnonymousCredentials`` and never sends a Google token, whether ADC
exist or not -- a bearer token must not cross a connection without TLS. An
``https://`` endpoint (a Private Service Connect or regional endpoint) and the default
endpoint always use ADC; without ADC they fail with ``BackendInvalidConfig``. Nothing else
changes the credentials: this module reads no environment variable of its own.

The ``endpoint`` comes from the platform's CredentialBackend (a tenant cannot write
one), and every ``https://`` endpoint receives the operator's Google access token:
only the platform team decides where that token may go.

Transport: ``spec.transport`` is ``grpc`` (default) or ``rest``. With REST,
``spec.endpoint`` is the URL the client talks to. With gRPC it names the host and port
only (443 for https, 80 for http): ``https://`` opens a TLS channel carrying ADC,
``http://`` a plaintext channel without credentials (gRPC refuses call credentials
on a plaintext channel anyway). One client per (transport, endpoint) is kept and
shared by every task.

``check`` reads the secret's metadata (``get_secret``): it proves the endpoint answers
and the secret exists, but needs ``secretmanager.secrets.get`` (e.g.
``roles/secretmanager.viewer`` on the secret), which ``roles/secretmanager.
secretAccessor`` alone does not grant; without it the credential shows ``BackendDenied``
while issuing may still work.

The client library is synchronous: every call runs in this backend's
:class:`BlockingRunner`. Calls carry a timeout and no SDK retry: a failure goes back
to the operator at once, typed by :func:`gcp_error`, and the operator retries
``BackendUnavailable`` with its own backoff.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints
import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Capabilities,
    Issued,
    IssueRequest,
    NoLeaseLifecycle,
)
from agentcred.backends.lru import LruCache
from agentcred.backends.payload import fields_from_bytes
from agentcred.backends.pooled import STATIC, PooledBackend, log_issue, unrenewable
from agentcred.models.resolved import GcpSecretManagerSpec, ResolvedCredential

log = logging.getLogger(__name__)

KIND = "gcpSecretManager"
TRANSPORTS = ("grpc", "rest")
SERVICE = "GCP Secret Manager"
MAX_ERROR_TEXT = 300
ADC_HINT = (
    " (the operator uses Application Default Credentials: Workload Identity for its"
    " ServiceAccount on GKE, GOOGLE_APPLICATION_CREDENTIALS elsewhere)"
)
METADATA_HINT = (
    " (checking a credential reads the secret's metadata: the operator's identity needs"
    " secretmanager.secrets.get, e.g. roles/secretmanager.viewer, besides secretAccessor)"
)
_PROJECT = re.compile(r"^[^/\s]{1,63}$")  # an id, a number, or a legacy "example.com:p"
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION = re.compile(r"^(latest|[1-9][0-9]*)$")
# REST errors read "<METHOD> <url>: <server text>"; the action already names the resource.
_REST_PREFIX = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ")
RETRYABLE = (
    gexc.ServerError,  # 5xx: InternalServerError, ServiceUnavailable, DeadlineExceeded, ...
    gexc.TooManyRequests,  # 429, ResourceExhausted
    gexc.Cancelled,
    gexc.Aborted,
    gexc.RetryError,
)

# What the client library raises; anything else is a bug and propagates as it is.
# ValueError: the library's own checks of its options (e.g. a universe domain mismatch).
SDK_ERRORS = (
    gexc.GoogleAPIError,
    auth_exc.GoogleAuthError,
    requests.RequestException,
    grpc.RpcError,
    ValueError,
)


def gcp_error(exc: BaseException, action: str, *, hint: str = "") -> BackendError:
    """The typed error for ``exc``, raised by the client library while doing ``action``.

    Raise the result ``from exc``. Messages quote the server's or library's own text
    (never a payload), cut to 300 characters. ``hint`` is added to refusals only.
    """
    text = _error_text(exc)
    said = f": {text}" if text else ""
    if isinstance(exc, gexc.NotFound):
        return BackendNotFound(f"{SERVICE} found nothing for {action}{said}")
    if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):  # PermissionDenied, Unauthenticated
        return BackendDenied(f"{SERVICE} denied {action}{said}{hint}")
    if isinstance(exc, gexc.BadRequest):  # InvalidArgument, FailedPrecondition, OutOfRange
        return BackendInvalidConfig(f"{SERVICE} refused {action}{said}")
    if isinstance(exc, gexc.MethodNotImplemented):  # 501: this endpoint lacks the method
        return BackendInvalidConfig(f"{SERVICE} does not implement {action}{said}")
    if isinstance(exc, RETRYABLE):
        return BackendUnavailable(
            f"{SERVICE} could not serve {action} now{said}", _retry_after(exc)
        )
    if isinstance(exc, gexc.GoogleAPICallError):  # another 4xx: e.g. 405, 409, 412
        return BackendInvalidConfig(f"{SERVICE} rejected {action}{said}")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return BackendInvalidConfig(f"no Google credentials for {action}{said}{ADC_HINT}")
    if isinstance(exc, auth_exc.TransportError):  # the token endpoint could not be reached
        return BackendUnavailable(f"cannot get a Google access token for {action} now{said}")
    if isinstance(exc, auth_exc.RefreshError):
        if getattr(exc, "retryable", False):
            return BackendUnavailable(f"cannot get a Google access token for {action} now{said}")
        return BackendDenied(f"Google refused a token for {action}{said}{ADC_HINT}")
    if isinstance(exc, requests.ConnectionError | requests.Timeout | grpc.RpcError):
        return BackendUnavailable(f"cannot reach {SERVICE} for {action}{said}")
    return BackendInvalidConfig(f"cannot do {action}: {type(exc).__name__}{said}")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, gexc.GoogleAPICallError):
        raw = str(exc.message or "")
    elif isinstance(exc, gexc.RetryError):
        raw = f"{exc.message} ({exc.cause})" if exc.cause else str(exc.message)
    elif isinstance(exc, grpc.RpcError) and callable(getattr(exc, "details", None)):
        raw = str(exc.details() or exc)
    else:
        raw = str(exc)
    text = _REST_PREFIX.sub("", " ".join(raw.split()))
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header of a REST answer, if it has one."""
    response = getattr(exc, "response", None)
    headers: Any = getattr(response, "headers", None)
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: leave the delay to the operator's backoff


@dataclass(frozen=True)
class _Endpoint:
    """Where a client talks to, derived from ``spec.endpoint`` without I/O."""

    transport: str
    url: str  # "" = the library's default endpoint
    plaintext: bool  # http://: no TLS, so no credentials either
    target: str  # gRPC "host:port"; "" for REST or the default endpoint


class GcpSecretManagerBackend(NoLeaseLifecycle, PooledBackend):
    """The Backend for GCP Secret Manager; one instance per operator (``timeout``: seconds
    for one call, connecting included)."""

    what_cannot_renew = "GCP Secret Manager values"

    kind = KIND

    def _make_clients(self, cache_size: int) -> None:
        self._clients: LruCache[tuple[str, str], Any] = LruCache(cache_size)
        self._lock = threading.Lock()  # client creation runs in the pool's threads

    # -- declared abilities and checks ------------------------------------------------

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return STATIC

    def validate(self, spec: ResolvedCredential) -> None:
        self._target(spec)

    async def check(self, spec: ResolvedCredential) -> None:
        gcp, endpoint = self._target(spec)
        name = f"projects/{gcp.project}/secrets/{gcp.secret}"
        await self._call(endpoint, f"reading secret {name}", _get_secret, name, hint=METADATA_HINT)

    # -- issue, renew, revoke --------------------------------------------------------------

    async def issue(self, request: IssueRequest) -> Issued:
        gcp, endpoint = self._target(request.spec)
        name = f"projects/{gcp.project}/secrets/{gcp.secret}/versions/{gcp.version}"
        action = f"accessing {name}"
        issued_at = _now()
        response = await self._call(endpoint, action, _access, name)
        resolved = str(getattr(response, "name", "") or name)
        data = _payload(response, f"{SERVICE} secret version {resolved}")
        log_issue(log, request, "read %s", resolved)
        return unrenewable(data, resolved, issued_at)

    async def aclose(self) -> None:
        """Close every client's transport, and the thread pool unless it was given."""
        clients = self._clients.drain()
        for client in clients:
            try:
                client.transport.close()
            except Exception as exc:  # closing is best effort
                log.debug("closing a %s client failed: %s", SERVICE, type(exc).__name__)
        self._close_runner()

    # -- plumbing --------------------------------------------------------------------------

    async def _call(
        self,
        endpoint: _Endpoint,
        action: str,
        fn: Callable[..., Any],
        *args: Any,
        hint: str = "",
    ) -> Any:
        """Run ``fn(client, *args, timeout=...)`` in the pool; map its failure to a typed error."""
        try:
            return await self._runner.run(self._with_client, endpoint, fn, *args)
        except SDK_ERRORS as exc:
            raise gcp_error(exc, action, hint=hint) from exc

    def _with_client(self, endpoint: _Endpoint, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self._client(endpoint), *args, timeout=self._timeout)

    def _client(self, endpoint: _Endpoint) -> Any:
        """The shared client for ``endpoint``, built on first use (in a pool thread:
        finding ADC may ask the metadata server). A failed build is not cached."""
        key = (endpoint.transport, endpoint.url)
        return self._clients.get_or_make(key, lambda: _build_client(endpoint))

    def _target(self, spec: ResolvedCredential) -> tuple[GcpSecretManagerSpec, _Endpoint]:
        """The block of ``spec`` and its endpoint, checked without I/O (``validate``)."""
        gcp = spec.gcp_secret_manager
        if gcp is None:
            raise BackendInvalidConfig(
                "spec.gcpSecretManager is not set: this is not a GCP Secret Manager credential"
            )
        where = "spec.gcpSecretManager"
        if not _PROJECT.match(gcp.project):
            raise BackendInvalidConfig(f"{where}.project must be a project id or number")
        if not _SECRET.match(gcp.secret):
            raise BackendInvalidConfig(
                f"{where}.secret must be 1-255 letters, digits, '_' or '-' (a secret id)"
            )
        if not _VERSION.match(gcp.version):
            raise BackendInvalidConfig(
                f"{where}.version must be 'latest' or a positive version number"
            )
        if gcp.transport not in TRANSPORTS:
            raise BackendInvalidConfig(f"{where}.transport must be one of {', '.join(TRANSPORTS)}")
        return gcp, _endpoint(gcp.transport, gcp.endpoint, f"{where}.endpoint")


# -- blocking helpers (run in the pool) and response parsing -------------------------------


GOOGLE_API_DOMAIN = ".googleapis.com"


def _endpoint(transport: str, raw: str | None, where: str) -> _Endpoint:
    if not raw:
        return _Endpoint(transport=transport, url="", plaintext=False, target="")
    url = urlsplit(raw)
    try:
        port = url.port
    except ValueError:
        raise BackendInvalidConfig(f"{where} has an invalid port") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise BackendInvalidConfig(f"{where} must be an http:// or https:// URL")
    if url.username or url.password:
        raise BackendInvalidConfig(f"{where} must not hold credentials")
    if url.query or url.fragment:
        raise BackendInvalidConfig(f"{where} must not have a query or fragment")
    plaintext = url.scheme == "http"
    if not plaintext and not url.hostname.endswith(GOOGLE_API_DOMAIN):
        # The operator's own Google token goes to every https endpoint it calls, and a
        # tenant writes spec.endpoint: never hand that token to a host outside Google APIs.
        raise BackendInvalidConfig(
            f"{where} must be a *{GOOGLE_API_DOMAIN} host (regional or Private Service "
            "Connect endpoint); the operator's Google credentials are not sent elsewhere"
        )
    if transport == "rest":
        return _Endpoint(transport, raw.rstrip("/"), plaintext, target="")
    if url.path not in ("", "/"):
        raise BackendInvalidConfig(f"{where} must be scheme://host[:port] for the grpc transport")
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    target = f"{host}:{port or (80 if plaintext else 443)}"
    return _Endpoint(transport, f"{url.scheme}://{target}", plaintext, target)


def _build_client(endpoint: _Endpoint) -> Any:
    if endpoint.transport == "grpc" and endpoint.plaintext:
        channel = grpc.insecure_channel(endpoint.target)
        transport = SecretManagerServiceGrpcTransport(host=endpoint.target, channel=channel)
        return secretmanager.SecretManagerServiceClient(transport=transport)
    options = None
    if endpoint.url:
        api_endpoint = endpoint.target if endpoint.transport == "grpc" else endpoint.url
        options = ClientOptions(api_endpoint=api_endpoint)
    # credentials=None: the library finds Application Default Credentials itself.
    credentials = AnonymousCredentials() if endpoint.plaintext else None  # type: ignore[no-untyped-call]
    return secretmanager.SecretManagerServiceClient(
        transport=endpoint.transport, client_options=options, credentials=credentials
    )


def _access(client: Any, name: str, *, timeout: float) -> Any:
    return client.access_secret_version(request={"name": name}, retry=None, timeout=timeout)


def _get_secret(client: Any, name: str, *, timeout: float) -> Any:
    return client.get_secret(request={"name": name}, retry=None, timeout=timeout)


def _payload(response: Any, source: str) -> dict[str, str]:
    payload = getattr(response, "payload", None)
    data = getattr(payload, "data", None)
    if payload is None or not isinstance(data, bytes):
        raise BackendInvalidConfig(f"{source}: the answer holds no payload")
    if "data_crc32c" in payload and crc32c(data) != int(payload.data_crc32c):
        raise BackendUnavailable(f"{source}: the payload does not match its CRC32C checksum")
    return fields_from_bytes(data, source)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Secret Manager keeps of each payload (<= 64 KiB)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
