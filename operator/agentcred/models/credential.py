"""AgentCredential spec: *what* a task in this namespace may be issued, never *where* from.

A tenant names a platform-owned ``CredentialBackend`` (``backendRef``) and, in one
block of the same kind, the secret, path or role it wants within that backend's
allow-lists. Addresses, endpoints, audiences and Secret references are not here on
purpose: they live on the cluster-scoped backend, so nothing a tenant writes can send
a token anywhere (models/policy.py checks the request against the backend).

Defaults live here (never in the CRD schema, where Argo CD would see them as drift).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agentcred.models.errors import SpecError
from agentcred.models.parse import build, json_name
from agentcred.models.resolved import (
    DEFAULT_REFRESH_INTERVAL,
    DEFAULT_RENEWAL_PERCENT,
    DEFAULT_TTL,
    VaultDynamic,
    VaultKV,
)

# Floors that keep one manifest from turning the operator into a renewal storm.
MIN_TTL = timedelta(seconds=60)
MIN_REFRESH_INTERVAL = timedelta(seconds=10)
MAX_PARAMS_BYTES = 8192  # copied into every lease record; a Secret holds at most 1 MiB

KINDS = ("vault", "aws_secrets_manager", "aws_sts", "gcp_secret_manager", "azure_key_vault")


@dataclass(frozen=True)
class BackendRef:
    name: str


@dataclass(frozen=True)
class VaultRequest:
    role: str | None = None  # kubernetes-auth role, logged in to as the task's ServiceAccount
    dynamic: VaultDynamic | None = None
    kv: VaultKV | None = None

    @property
    def path(self) -> str:
        """The API path matched against ``allowedPaths``: KV v2 as ``<mount>/data/<path>``."""
        if self.kv is not None:
            return f"{self.kv.mount.strip('/')}/data/{self.kv.path.strip('/')}"
        return self.dynamic.path.strip("/") if self.dynamic is not None else ""


@dataclass(frozen=True)
class SecretsManagerRequest:
    secret_id: str
    version_stage: str | None = None
    version_id: str | None = None
    key: str = "value"


@dataclass(frozen=True)
class StsRequest:
    role_arn: str
    duration_seconds: int | None = None
    session_policy: str | None = None


@dataclass(frozen=True)
class GcpSecretRequest:
    secret: str  # a secret id (the backend's project) or projects/<p>/secrets/<id>
    version: str = "latest"


@dataclass(frozen=True)
class AzureSecretRequest:
    name: str
    version: str | None = None


@dataclass(frozen=True)
class AgentCredentialSpec:
    backend_ref: BackendRef
    service_accounts: tuple[str, ...] | None = None
    vault: VaultRequest | None = None
    aws_secrets_manager: SecretsManagerRequest | None = None
    aws_sts: StsRequest | None = None
    gcp_secret_manager: GcpSecretRequest | None = None
    azure_key_vault: AzureSecretRequest | None = None
    ttl: timedelta = DEFAULT_TTL
    renewal_percent: int = DEFAULT_RENEWAL_PERCENT
    refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL
    template: Mapping[str, str] = field(default_factory=dict)

    @property
    def backend_kind(self) -> str:
        """The backend kind: vault, awsSecretsManager, awsSts, gcpSecretManager, azureKeyVault."""
        return json_name(next(f for f in KINDS if getattr(self, f) is not None))


def parse_credential_spec(spec: Mapping[str, Any]) -> AgentCredentialSpec:
    """Parse and check what the schema cannot express in types; raise SpecError."""
    parsed = build(AgentCredentialSpec, spec, "spec")
    if sum(getattr(parsed, f) is not None for f in KINDS) != 1:
        raise SpecError("spec", "exactly one backend block must be set")
    if not 1 <= parsed.renewal_percent <= 99:
        raise SpecError("spec.renewalPercent", "must be between 1 and 99")
    if parsed.ttl < MIN_TTL:
        raise SpecError("spec.ttl", f"must be at least {MIN_TTL.total_seconds():.0f}s")
    if parsed.refresh_interval < MIN_REFRESH_INTERVAL:
        raise SpecError(
            "spec.refreshInterval", f"must be at least {MIN_REFRESH_INTERVAL.total_seconds():.0f}s"
        )
    vault = parsed.vault
    if vault is not None:
        if (vault.dynamic is None) == (vault.kv is None):
            raise SpecError("spec.vault", "needs exactly one of dynamic or kv")
        params = vault.dynamic.params if vault.dynamic is not None else None
        if params is not None and len(json.dumps(params)) > MAX_PARAMS_BYTES:
            raise SpecError(
                "spec.vault.dynamic.params", f"must be at most {MAX_PARAMS_BYTES} bytes"
            )
        if not _PLAIN_PATH.match(vault.path) or {".", ".."} & set(vault.path.split("/")):
            raise SpecError(
                "spec.vault", f"path {vault.path!r} must be plain segments (no '..', '//', %, ?, #)"
            )
    return parsed


# What an allow-list can be matched against safely: no segment Vault would normalise away.
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._@+=,:~-]+(/[A-Za-z0-9._@+=,:~-]+)*$")
