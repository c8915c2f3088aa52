"""How the Vault backend talks to Vault: pooled HTTP per address, hvac clients, one call path.

Each (address, CA bundle) has one pooled ``requests.Session`` (kept in an LRU), and an
hvac client is built on it per call (cheap, no I/O). hvac is synchronous: every call
runs in the backend's :class:`BlockingRunner`, never on the event loop, and its failure
is mapped in one place (:func:`~agentcred.backends.vault.errors.vault_error`).

Every request carries ``X-Correlation-Id``; Vault's audit devices record it once it
is listed with ``vault write sys/config/auditing/request-headers/X-Correlation-Id
hmac=false``, tying an audit entry to the task event that caused it.
``spec.vault.namespace`` is sent as ``X-Vault-Namespace``. TLS is verified against the
system CAs, or the CA bundle passed as ``verify`` (``REQUESTS_CA_BUNDLE`` works too).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import hvac
import requests
from hvac import exceptions as vault_exc
from hvac.adapters import JSONAdapter
from requests.adapters import HTTPAdapter

from agentcred import tracing
from agentcred.backends.blocking import BlockingRunner
from agentcred.backends.lru import LruCache
from agentcred.backends.vault.errors import vault_error
from agentcred.models.resolved import VaultSpec

CORRELATION_HEADER = "X-Correlation-Id"
# W3C trace context of the operator's current span (tracing.py), when tracing is on: Vault
# logs it in its audit log once `sys/config/auditing/request-headers/traceparent` is set.
TRACE_HEADER = "traceparent"


class CorrelatedAdapter(JSONAdapter):  # type: ignore[misc]  # hvac ships no type hints
    """hvac's JSON adapter, plus ``X-Correlation-Id`` (and, when tracing, ``traceparent``)
    on requests and the status on errors."""

    def __init__(self, *args: Any, correlation_id: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.correlation_id = correlation_id

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        if self.correlation_id:
            headers = {**(headers or {}), CORRELATION_HEADER: self.correlation_id}
        parent = tracing.traceparent()  # the span's context followed the call to this thread
        if parent:
            headers = {**(headers or {}), TRACE_HEADER: parent}
        return super().request(method, url, headers=headers, **kwargs)

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        """hvac's errors carry no status code; keep it for :func:`vault_error`."""
        try:
            super()._raise_for_error(method, url, response)
        except vault_exc.VaultError as exc:
            exc.status_code = response.status_code
            raise


class Connection:
    """The pooled HTTP of every Vault address, and the one way a Vault call is run."""

    def __init__(
        self,
        runner: BlockingRunner,
        *,
        timeout: float,
        verify: bool | str,
        cache_size: int,
        transport: Callable[[], HTTPAdapter] | None = None,
    ) -> None:
        self._runner = runner
        self._timeout = timeout
        self._verify = verify
        self._http_pools: LruCache[tuple[str, str | None], requests.Session] = LruCache(cache_size)
        self._transport = transport or self._pooled_transport

    async def call(
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

    def client(
        self, vault: VaultSpec, correlation_id: str, token: str = "", *, root: bool = False
    ) -> Any:
        """An hvac client on the pooled HTTP of the backend's address (cheap; no I/O).

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
            adapter=CorrelatedAdapter,
            correlation_id=correlation_id,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        for http in self._http_pools.drain():
            http.close()

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

        return self._http_pools.get_or_make((address, ca_bundle), make)

    def _pooled_transport(self) -> HTTPAdapter:
        return HTTPAdapter(pool_connections=1, pool_maxsize=self._runner.concurrency)


def _ca_file(pem: str) -> str:
    """A backend's ``caBundle`` as a file for requests (written once, named by its hash)."""
    path = os.path.join(
        tempfile.gettempdir(), f"agentcred-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    )
    if not os.path.exists(path):
        with open(path, "w", encoding="ascii") as out:
            out.write(pem)
    return path


# -- blocking helpers (run in the pool) ---------------------------------------------------


def send(client: Any, method: str, path: str, params: Mapping[str, Any] | None) -> Any:
    """A dynamic read: GET with ``params`` as the query, other methods with a JSON body."""
    url = f"/v1/{path.strip('/')}"
    if method.upper() == "GET":
        return client.adapter.request("get", url, params=dict(params or {}))
    return client.adapter.request(method.lower(), url, json=dict(params or {}))


def health_status(client: Any) -> int:
    params = {"standbyok": "true", "perfstandbyok": "true"}
    response = client.adapter.get("/v1/sys/health", params=params, raise_exception=False)
    return 200 if isinstance(response, dict) else int(response.status_code)
