"""Pick the backend for an AgentCredential spec; SDKs are imported only when first needed.

One instance per backend kind, so each kind has one bounded worker pool and one
connection pool shared by every task.
"""

from __future__ import annotations

from agentcred.backends.base import Backend, InvalidConfig
from agentcred.backends.instrumented import instrument
from agentcred.models.credential import AgentCredentialSpec


class BackendRegistry:
    def __init__(self, *, vault_address: str | None = None, concurrency: int = 16) -> None:
        self._vault_address = vault_address
        self._concurrency = concurrency
        self._instances: dict[str, Backend] = {}

    def for_kind(self, kind: str) -> Backend:
        if kind not in self._instances:
            self._instances[kind] = instrument(self._build(kind))
        return self._instances[kind]

    def for_spec(self, spec: AgentCredentialSpec) -> Backend:
        return self.for_kind(spec.backend)

    def _build(self, kind: str) -> Backend:
        if kind == "vault":
            from agentcred.backends.vault import VaultBackend  # noqa: PLC0415 - optional SDK

            return VaultBackend(default_address=self._vault_address, concurrency=self._concurrency)
        raise InvalidConfig(f"backend {kind!r} is not available in this operator build")
