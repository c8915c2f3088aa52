"""A credential as a backend sees it: an AgentCredential resolved against its CredentialBackend.

Tenants write *what* they want (``AgentCredential``, models/credential.py); the platform
writes *where* it comes from and *who* may have it (``CredentialBackend``,
models/backend.py). :func:`agentcred.models.policy.authorize` checks the first against
the second and merges both into one ``ResolvedCredential``: the connection (address,
endpoint, auth method, audience) from the backend, the secret's name and the timings
from the credential. Backends consume only this type, so nothing a tenant writes can
reach a connection field.

Its JSON form (``to_json``/``parse_resolved``) is what a write-ahead lease record
keeps, so renewal and revocation use the connection a lease was issued under, never
a later-edited one. Defaults live here (never in the CRD schemas: Argo CD drift).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agentcred.models.errors import SpecError
from agentcred.models.parse import build, json_name

DEFAULT_TTL = timedelta(minutes=15)
DEFAULT_RENEWAL_PERCENT = 67
DEFAULT_REFRESH_INTERVAL = timedelta(minutes=5)


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class VaultKubernetesAuth:
    role: str
    mount_path: str = "kubernetes"
    audience: str = "vault"


@dataclass(frozen=True)
class VaultAppRoleAuth:
    role_id: str
    secret_id_ref: SecretKeyRef
    mount_path: str = "approle"


@dataclass(frozen=True)
class VaultAuth:
    kubernetes: VaultKubernetesAuth | None = None
    app_role: VaultAppRoleAuth | None = None
    token_secret_ref: SecretKeyRef | None = None


@dataclass(frozen=True)
class VaultDynamic:
    path: str
    method: str | None = None
    params: Mapping[str, Any] | None = None

    @property
    def http_method(self) -> str:
        return self.method or ("POST" if self.params else "GET")


@dataclass(frozen=True)
class VaultKV:
    path: str
    mount: str = "secret"
    version: int = 0


@dataclass(frozen=True)
class VaultSpec:
    auth: VaultAuth
    address: str
    namespace: str | None = None
    ca_bundle: str | None = None
    dynamic: VaultDynamic | None = None
    kv: VaultKV | None = None
    allow_unleased: bool = False  # the backend's vault.allowUnleased at issue


@dataclass(frozen=True)
class AwsSecretsManagerSpec:
    secret_id: str
    region: str | None = None
    version_stage: str | None = None
    version_id: str | None = None
    key: str = "value"
    endpoint: str | None = None


@dataclass(frozen=True)
class AwsWebIdentity:
    audience: str = "sts.amazonaws.com"


@dataclass(frozen=True)
class AwsStsSpec:
    role_arn: str
    region: str | None = None
    duration_seconds: int | None = None
    session_policy: str | None = None
    web_identity: AwsWebIdentity | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class GcpSecretManagerSpec:
    project: str
    secret: str
    version: str = "latest"
    transport: str = "grpc"
    endpoint: str | None = None


@dataclass(frozen=True)
class AzureKeyVaultSpec:
    vault_url: str
    name: str
    version: str | None = None


BACKEND_FIELDS = (
    "vault",
    "aws_secrets_manager",
    "aws_sts",
    "gcp_secret_manager",
    "azure_key_vault",
)


@dataclass(frozen=True)
class ResolvedCredential:
    vault: VaultSpec | None = None
    aws_secrets_manager: AwsSecretsManagerSpec | None = None
    aws_sts: AwsStsSpec | None = None
    gcp_secret_manager: GcpSecretManagerSpec | None = None
    azure_key_vault: AzureKeyVaultSpec | None = None
    ttl: timedelta = DEFAULT_TTL
    renewal_percent: int = DEFAULT_RENEWAL_PERCENT
    refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL
    template: Mapping[str, str] = field(default_factory=dict)
    allow_insecure_http: bool = False
    max_ttl: timedelta | None = None  # the backend's maxTTL at issue: the ceiling (models/ceiling)

    @property
    def target(self) -> str:
        """Where this credential's calls go (the key of the per-backend fair share)."""
        if self.vault is not None:
            return self.vault.address
        if self.aws_secrets_manager is not None:
            sm = self.aws_secrets_manager
            return f"awsSecretsManager {sm.region or ''} {sm.endpoint or ''}"
        if self.aws_sts is not None:
            return f"awsSts {self.aws_sts.region or ''} {self.aws_sts.endpoint or ''}"
        if self.gcp_secret_manager is not None:
            return f"gcpSecretManager {self.gcp_secret_manager.endpoint or ''}"
        if self.azure_key_vault is not None:
            return self.azure_key_vault.vault_url
        return ""

    @property
    def backend_kind(self) -> str:
        """The backend kind: vault, awsSecretsManager, awsSts, gcpSecretManager, azureKeyVault."""
        return json_name(next(f for f in BACKEND_FIELDS if getattr(self, f) is not None))


def parse_resolved(spec: Mapping[str, Any]) -> ResolvedCredential:
    """Parse a resolved credential's JSON (a lease record's); raise SpecError."""
    parsed = build(ResolvedCredential, spec, "spec")
    present = [f for f in BACKEND_FIELDS if getattr(parsed, f) is not None]
    if len(present) != 1:
        raise SpecError("spec", "exactly one backend block must be set")
    if not 1 <= parsed.renewal_percent <= 99:
        raise SpecError("spec.renewalPercent", "must be between 1 and 99")
    if parsed.vault is not None:
        _check_vault(parsed.vault)
    return parsed


def _check_vault(vault: VaultSpec) -> None:
    methods = [
        m for m in (vault.auth.kubernetes, vault.auth.app_role, vault.auth.token_secret_ref) if m
    ]
    if len(methods) != 1:
        raise SpecError(
            "spec.vault.auth", "needs exactly one method: kubernetes, appRole or tokenSecretRef"
        )
    if (vault.dynamic is None) == (vault.kv is None):
        raise SpecError("spec.vault", "needs exactly one of dynamic or kv")
