"""Pick the backend for an AgentCredential spec; SDKs are imported only when first needed.

One instance per backend kind, so each kind has one bounded worker pool and one
connection pool shared by every task. Each is wrapped in
:func:`~agentcred.backends.instrumented.instrument`, which counts its calls.
"""

from __future__ import annotations

from typing import Any

from agentcred.backends.base import Backend, BackendInvalidConfig
from agentcred.backends.instrumented import instrument
from agentcred.backends.lru import DEFAULT_SIZE
from agentcred.models.resolved import ResolvedCredential


class BackendRegistry:
    def __init__(
        self,
        *,
        concurrency: int = 16,
        cache_size: int = DEFAULT_SIZE,
        timeout: float = 30.0,
        azure_verify_challenge_resource: bool = True,
        azure_ca_bundle: str | None = None,
        azure_api_version: str | None = None,
    ) -> None:
        self._concurrency = concurrency
        self._common: dict[str, Any] = {"cache_size": cache_size, "timeout": timeout}
        self._azure_verify_challenge_resource = azure_verify_challenge_resource
        self._azure_ca_bundle = azure_ca_bundle
        self._azure_api_version = azure_api_version
        self._instances: dict[str, Backend] = {}

    def for_kind(self, kind: str) -> Backend:
        if kind not in self._instances:
            self._instances[kind] = instrument(self._build(kind))
        return self._instances[kind]

    def for_spec(self, spec: ResolvedCredential) -> Backend:
        return self.for_kind(spec.backend)

    def azure_client_options(self) -> dict[str, Any]:
        """``SecretClient`` options from the operator's settings; unset ones are left out,
        so the SDK's defaults (challenge check on, system CAs, its api version) apply."""
        options: dict[str, Any] = {}
        if not self._azure_verify_challenge_resource:
            options["verify_challenge_resource"] = False
        if self._azure_ca_bundle:
            options["connection_verify"] = self._azure_ca_bundle
        if self._azure_api_version:
            options["api_version"] = self._azure_api_version
        return options

    def _build(self, kind: str) -> Backend:
        # Each SDK is optional: imported only when its kind is first needed (PLC0415).
        if kind == "vault":
            from agentcred.backends.vault import VaultBackend  # noqa: PLC0415

            return VaultBackend(concurrency=self._concurrency, **self._common)
        if kind == "awsSecretsManager":
            from agentcred.backends.aws_secrets_manager import (  # noqa: PLC0415
                AwsSecretsManagerBackend,
            )

            return AwsSecretsManagerBackend(concurrency=self._concurrency, **self._common)
        if kind == "awsSts":
            from agentcred.backends.aws_sts import AwsStsBackend  # noqa: PLC0415

            return AwsStsBackend(concurrency=self._concurrency, **self._common)
        if kind == "gcpSecretManager":
            from agentcred.backends.gcp_secret_manager import (  # noqa: PLC0415
                GcpSecretManagerBackend,
            )

            return GcpSecretManagerBackend(concurrency=self._concurrency, **self._common)
        if kind == "azureKeyVault":
            from agentcred.backends.azure_key_vault import AzureKeyVaultBackend  # noqa: PLC0415

            return AzureKeyVaultBackend(
                concurrency=self._concurrency,
                cache_size=self._common["cache_size"],
                client_options=self.azure_client_options(),
            )
        raise BackendInvalidConfig(f"backend {kind!r} is not available in this operator build")
