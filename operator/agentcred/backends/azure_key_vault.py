"""Azure Key Vault: a static secret, read with the operator's Azure identity.

What is read. ``spec.azureKeyVault`` names a vault (``vaultUrl``, https only: the SDK
sends bearer tokens over TLS only), a secret ``name`` and optionally a ``version``
(latest otherwise). The value becomes fields as :mod:`agentcred.backends.payload`
says: a JSON object gives one key per field, anything else the single key ``value``.
``lease_id`` is the secret's id, the URL with its version
(``https://kv.vault.azure.net/secrets/llm-key/<version>``), so a rotation shows as a
new lease id. Nothing is renewed (``renew`` raises ``BackendInvalidConfig``) or revoked.

Never served: a secret version that is disabled, expired (``expires_on`` passed) or
not yet valid (``not_before`` ahead). Key Vault itself refuses a disabled secret (403
``SecretDisabled``, mapped to ``BackendInvalidConfig`` rather than ``BackendDenied``: it is the
secret's state, not the identity's rights; emulators may answer 404 instead), but
it does serve expired and not-yet-valid ones, so this module refuses those itself,
with ``BackendInvalidConfig`` naming the secret and the time, never the value. Note that
``latest`` is the newest version whatever its dates: a new version staged with a
future ``not_before`` makes ``latest`` unusable until then. ``Issued.expires_at`` is
the version's ``expires_on`` when it has one, so the generated Secret is deleted at
that moment rather than outliving the value's validity.

Who reads it: ``azure.identity.DefaultAzureCredential`` (on AKS, Workload Identity
through ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID`` and ``AZURE_FEDERATED_TOKEN_FILE``,
which the webhook injects; elsewhere a managed identity or the other sources it
tries), built once and shared by every vault; ``credential_factory`` replaces it.

TLS and the challenge. The vault's certificate is verified against the system CAs or
``REQUESTS_CA_BUNDLE`` (requests reads it; it then replaces the system CAs for every
request of the process, Microsoft Entra's token endpoint included, so such a bundle
must hold the public roots too). For a vault behind a private CA prefer
``client_options={"connection_verify": "/path/ca.pem"}`` (the operator sets it from
``AGENTCRED_AZURE_CA_BUNDLE``), which applies to the vault's connections only. The SDK
checks that the resource named in the vault's authentication challenge belongs to
the vault's own domain (``verify_challenge_resource``, on by default): only a vault
outside ``*.vault.azure.net`` and the sovereign clouds' domains, such as an emulator,
needs ``{"verify_challenge_resource": False}`` (``AGENTCRED_AZURE_VERIFY_CHALLENGE_
RESOURCE=false``) -- turning it off lets any vault URL ask for a Key Vault token.
``{"api_version": "7.6"}`` (``AGENTCRED_AZURE_API_VERSION``) pins the REST api version
for vaults or emulators that lag behind the SDK's default.

``client_options`` are keyword arguments of ``SecretClient`` and override this
module's defaults: no SDK retries (``retry_total=0``: the operator retries
``BackendUnavailable`` with its own backoff), 10 s to connect, 30 s to read. One client per
vault URL is kept and shared by every task.

The SDK is synchronous: every call runs in this backend's :class:`BlockingRunner`.
Failures are typed in one function, :func:`azure_error`.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Self
from urllib.parse import urlsplit

from azure.core import exceptions as az_exc
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

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
from agentcred.backends.blocking import BlockingRunner
from agentcred.backends.lru import DEFAULT_SIZE, LruCache
from agentcred.backends.payload import fields_from_text
from agentcred.backends.pooled import STATIC, PooledBackend, log_issue, unrenewable
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import AzureKeyVaultSpec, ResolvedCredential

log = logging.getLogger(__name__)

KIND = "azureKeyVault"
SERVICE = "Azure Key Vault"
MAX_ERROR_TEXT = 300
DEFAULT_CLIENT_OPTIONS: Mapping[str, Any] = {
    "retry_total": 0,
    "connection_timeout": 10,
    "read_timeout": 30,
}
DISABLED_CODES = frozenset({"SecretDisabled"})
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def azure_error(exc: BaseException, action: str) -> BackendError:
    """The typed error for ``exc``, raised by the Azure SDK while doing ``action``.

    Raise the result ``from exc``. Messages quote Key Vault's own error message (or
    azure-identity's), cut to 300 characters; never a response body, which azure-core
    would otherwise add to errors it cannot parse.
    """
    text = _error_text(exc)
    said = f": {text}" if text else ""
    if isinstance(exc, az_exc.ResourceNotFoundError):
        return BackendNotFound(f"{SERVICE} found nothing for {action}{said}")
    if isinstance(exc, az_exc.ClientAuthenticationError):
        return BackendDenied(f"{SERVICE} could not authenticate {action}{said}")
    if isinstance(exc, az_exc.HttpResponseError):
        status = exc.status_code
        if status == 403 and _disabled(exc):
            return BackendInvalidConfig(
                f"{SERVICE} will not serve a disabled secret for {action}{said}"
            )
        if status in (401, 403):
            return BackendDenied(f"{SERVICE} denied {action}{said}")
        if status == 404:
            return BackendNotFound(f"{SERVICE} found nothing for {action}{said}")
        if status is None or status in (408, 429) or status >= 500:
            return BackendUnavailable(
                f"{SERVICE} could not serve {action} now{said}", _retry_after(exc)
            )
        return BackendInvalidConfig(f"{SERVICE} rejected {action}{said}")
    if isinstance(exc, az_exc.ServiceRequestError | az_exc.ServiceResponseError):
        return BackendUnavailable(f"cannot reach {SERVICE} for {action}{said}")
    return BackendInvalidConfig(f"cannot do {action}: {type(exc).__name__}{said}")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, az_exc.HttpResponseError) and exc.response is not None:
        error = exc.error
        if error is not None and (error.code or error.message):
            raw = f"({error.code}) {error.message}" if error.code else str(error.message)
        else:
            raw = f"HTTP {exc.status_code} {exc.reason or ''}"
    else:
        raw = str(getattr(exc, "message", None) or exc)
    text = " ".join(raw.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


def _disabled(exc: az_exc.HttpResponseError) -> bool:
    error = exc.error
    if error is None:
        return False
    inner = error.innererror if isinstance(error.innererror, Mapping) else {}
    return inner.get("code") in DISABLED_CODES or "disabled secret" in str(error.message or "")


def _retry_after(exc: az_exc.HttpResponseError) -> float | None:
    headers: Any = getattr(exc.response, "headers", None)
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: leave the delay to the operator's backoff


def unusable(properties: Any, now: datetime.datetime) -> str | None:
    """Why a secret version with these ``SecretProperties`` must not be served, or None."""
    if properties.enabled is False:
        return "is disabled"
    expires = _utc(properties.expires_on)
    if expires is not None and expires <= now:
        return f"expired at {expires.isoformat()}"
    not_before = _utc(properties.not_before)
    if not_before is not None and not_before > now:
        return f"is not valid before {not_before.isoformat()}"
    return None


class AzureKeyVaultBackend(NoLeaseLifecycle, PooledBackend):
    """The Backend for Azure Key Vault secrets; one instance per operator."""

    what_cannot_renew = "Azure Key Vault secrets"

    kind = KIND

    def __init__(
        self,
        concurrency: int = 16,
        cache_size: int = DEFAULT_SIZE,
        *,
        credential_factory: Callable[[], Any] | None = None,
        client_options: Mapping[str, Any] | None = None,
        runner: BlockingRunner | None = None,
    ) -> None:
        """``credential_factory``: builds the azure-core ``TokenCredential`` (default
        ``DefaultAzureCredential``), once. ``client_options``: keyword arguments of every
        ``SecretClient``, e.g. ``{"verify_challenge_resource": False, "connection_verify":
        "/ca.pem", "api_version": "7.6"}``, over :data:`DEFAULT_CLIENT_OPTIONS`.
        """
        self._credential_factory = credential_factory or DefaultAzureCredential
        self._client_options = {**DEFAULT_CLIENT_OPTIONS, **(client_options or {})}
        super().__init__(concurrency, cache_size, runner=runner)
        self._credential: Any = None
        self._clients: LruCache[str, Any] = LruCache(cache_size)
        self._lock = threading.Lock()  # clients are built in the pool's threads

    @property
    def client_options(self) -> Mapping[str, Any]:
        """What every ``SecretClient`` of this backend is built with (no secrets in it)."""
        return dict(self._client_options)

    @classmethod
    def from_settings(cls, settings: BackendSettings) -> Self:
        """The operator's instance (``registry.FACTORIES``)."""
        return cls(
            concurrency=settings.concurrency,
            cache_size=settings.cache_size,
            client_options=settings.azure_client_options(),
        )

    # -- declared abilities and checks ------------------------------------------------

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return STATIC

    def validate(self, spec: ResolvedCredential) -> None:
        self._target(spec)

    async def check(self, spec: ResolvedCredential) -> None:
        """Read the secret as ``issue`` would and drop the value: Key Vault has no
        metadata-only read of one version, and this also proves the identity may read it."""
        await self._read(spec)

    # -- issue, renew, revoke --------------------------------------------------------------

    async def issue(self, request: IssueRequest) -> Issued:
        issued_at = _now()
        secret, source = await self._read(request.spec)
        data = fields_from_text(secret.value, source)
        lease_id = str(secret.id)
        log_issue(log, request, "read %s", lease_id)
        return unrenewable(data, lease_id, issued_at, _utc(secret.properties.expires_on))

    async def aclose(self) -> None:
        """Close the clients and the credential, and the thread pool unless it was given."""
        with self._lock:
            closing = [*self._clients.drain(), self._credential]
            self._credential = None
        for item in closing:
            close = getattr(item, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # closing is best effort
                    log.debug("closing an %s client failed: %s", SERVICE, type(exc).__name__)
        self._close_runner()

    # -- plumbing --------------------------------------------------------------------------

    async def _read(self, spec: ResolvedCredential) -> tuple[Any, str]:
        """The secret version ``spec`` names, refused unless servable, and its description."""
        kv, vault_url = self._target(spec)
        which = f"version {kv.version}" if kv.version else "latest version"
        action = f"reading secret {kv.name} ({which}) from {vault_url}"
        try:
            secret = await self._runner.run(self._get, vault_url, kv.name, kv.version)
        except (az_exc.AzureError, ValueError) as exc:  # ValueError: e.g. a challenge mismatch
            raise azure_error(exc, action) from exc
        source = f"{SERVICE} secret {secret.id or kv.name}"
        problem = unusable(secret.properties, _now())
        if problem is not None:
            raise BackendInvalidConfig(f"{source} {problem}: it is not served")
        if not isinstance(secret.value, str) or not secret.id:
            raise BackendInvalidConfig(f"{SERVICE}'s answer to {action} holds no value or id")
        return secret, source

    def _get(self, vault_url: str, name: str, version: str | None) -> Any:
        return self._client(vault_url).get_secret(name, version)

    def _client(self, vault_url: str) -> Any:
        """The shared client of ``vault_url``, built on first use; failures are not cached."""
        with self._lock:
            if self._credential is None:
                self._credential = self._credential_factory()
            credential = self._credential
        return self._clients.get_or_make(
            vault_url, lambda: SecretClient(vault_url, credential, **self._client_options)
        )

    def _target(self, spec: ResolvedCredential) -> tuple[AzureKeyVaultSpec, str]:
        """The block of ``spec`` and its vault URL, checked without I/O (``validate``)."""
        kv = spec.azure_key_vault
        if kv is None:
            raise BackendInvalidConfig(
                "spec.azureKeyVault is not set: this is not an Azure Key Vault credential"
            )
        where = "spec.azureKeyVault"
        url = urlsplit(kv.vault_url)
        try:
            url.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise BackendInvalidConfig(f"{where}.vaultUrl has an invalid port") from None
        if url.scheme != "https" or not url.hostname:
            raise BackendInvalidConfig(
                f"{where}.vaultUrl must be an https:// URL such as https://my-vault.vault.azure.net"
            )
        if url.username or url.password or url.query or url.fragment or url.path not in ("", "/"):
            raise BackendInvalidConfig(
                f"{where}.vaultUrl must be https://host[:port] and nothing more"
            )
        if not _NAME.match(kv.name):
            raise BackendInvalidConfig(f"{where}.name must be 1-127 letters, digits or '-'")
        if kv.version is not None and not _VERSION.match(kv.version):
            raise BackendInvalidConfig(f"{where}.version must be a version id (letters and digits)")
        return kv, f"https://{url.netloc}"


def _utc(when: datetime.datetime | None) -> datetime.datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=datetime.UTC) if when.tzinfo is None else when


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
