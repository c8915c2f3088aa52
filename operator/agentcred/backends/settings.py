"""What the operator's configuration says to every backend, in one small frozen value.

The registry hands it to each backend's ``from_settings`` when that backend is first
needed, so a setting for one backend (Azure's client options) is a field here rather than
another argument threaded through the registry. Built by the caller from
``agentcred.settings.Settings`` (handlers/startup.py): backends never read the
environment, nor import kopf or the Kubernetes layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentcred.backends.lru import DEFAULT_SIZE


@dataclass(frozen=True)
class BackendSettings:
    concurrency: int = 16  # threads per backend kind (one pool per SDK)
    cache_size: int = DEFAULT_SIZE  # SDK clients / HTTP pools kept per kind (LRU)
    timeout: float = 30.0  # seconds to connect and to read, each (Azure: its SDK's own)
    # Azure Key Vault (see agentcred.backends.azure_key_vault): the challenge check, a CA
    # bundle for the vault's connections only, and a pinned REST api version.
    azure_verify_challenge_resource: bool = True
    azure_ca_bundle: str | None = None
    azure_api_version: str | None = None

    def azure_client_options(self) -> dict[str, Any]:
        """``SecretClient`` options from these settings; unset ones are left out, so the
        SDK's defaults (challenge check on, system CAs, its api version) apply."""
        options: dict[str, Any] = {}
        if not self.azure_verify_challenge_resource:
            options["verify_challenge_resource"] = False
        if self.azure_ca_bundle:
            options["connection_verify"] = self.azure_ca_bundle
        if self.azure_api_version:
            options["api_version"] = self.azure_api_version
        return options
