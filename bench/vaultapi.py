"""Plain HTTP calls to the testbed's OpenBao (Vault API): the admin's setup and counts,
and the agent-side calls of the plain-script floor.

``requests`` rather than hvac: the floor is meant to be the cheapest honest client
(one pooled session, one JSON round trip per call), and the benchmark's own overhead
competes with the operator for the same two cores.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

TIMEOUT = 30.0


class VaultError(RuntimeError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"Vault HTTP {status}: {text[:300]}")
        self.status = status


class Vault:
    def __init__(self, address: str, token: str = "", pool: int = 32) -> None:
        self.address = address.rstrip("/")
        self.token = token
        self._http = requests.Session()
        self._http.mount("http://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))
        self._http.mount("https://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))

    def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"X-Vault-Token": self.token if token is None else token}
        response = self._http.request(
            method, f"{self.address}/v1/{path}", json=body, headers=headers, timeout=TIMEOUT
        )
        if response.status_code >= 300:
            raise VaultError(response.status_code, response.text)
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    def write(self, path: str, body: dict[str, Any], *, token: str | None = None) -> dict[str, Any]:
        return self.call("POST", path, body, token=token)

    def read(self, path: str, *, token: str | None = None) -> dict[str, Any]:
        return self.call("GET", path, token=token)

    def list_keys(self, path: str) -> list[str]:
        try:
            body = self.call("LIST", path)
        except VaultError as exc:
            if exc.status == 404:
                return []
            raise
        return list((body.get("data") or {}).get("keys") or [])

    def policy(self, name: str, rules: str) -> None:
        self.call("PUT", f"sys/policies/acl/{name}", {"policy": rules})

    def kv_put(self, path: str, data: dict[str, str], mount: str = "secret") -> None:
        self.write(f"{mount}/data/{path}", {"data": data})

    def kv_delete_all(self, path: str, mount: str = "secret") -> None:
        try:
            self.call("DELETE", f"{mount}/metadata/{path}")
        except VaultError as exc:
            if exc.status != 404:
                raise

    def login_kubernetes(self, role: str, jwt: str, mount: str = "kubernetes") -> dict[str, Any]:
        body = self.write(f"auth/{mount}/login", {"role": role, "jwt": jwt}, token="")
        auth: dict[str, Any] = body["auth"]
        return auth

    def token_count(self) -> int:
        """Live tokens (every accessor; needs the root token)."""
        return len(self.list_keys("auth/token/accessors"))

    def lease_count(self, prefix: str) -> int:
        return len(self.list_keys(f"sys/leases/lookup/{prefix.rstrip('/')}/"))

    def revoke_accessor(self, accessor: str) -> None:
        self.write("auth/token/revoke-accessor", {"accessor": accessor})

    def raw(self, path: str, params: dict[str, Any], timeout: float = TIMEOUT) -> bytes:
        """A GET whose answer is not JSON (``sys/pprof/*``); needs the root token."""
        response = self._http.get(
            f"{self.address}/v1/{path}",
            params=params,
            headers={"X-Vault-Token": self.token},
            timeout=timeout,
        )
        if response.status_code >= 300:
            raise VaultError(response.status_code, response.text)
        return response.content

    def close(self) -> None:
        self._http.close()
