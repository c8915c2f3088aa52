"""CredentialBackend spec: *where* credentials come from and *who* may have them.

Cluster-scoped and owned by the platform team. Everything that could send a token
somewhere or choose whose identity is used lives here: the address or endpoint, the
CA, the auth method and its audience, operator-side Secrets (in the operator's own
namespace), which namespaces may use it, and the allow-lists a tenant's request must
fall inside. ``allowInsecureHTTP`` must be said out loud for a plain ``http://``
address (the testbed does; production should never need it).

Defaults live here (never in the CRD schema, where Argo CD would see them as drift).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from agentcred.models.errors import SpecError
from agentcred.models.parse import build, json_name
from agentcred.models.resolved import AwsWebIdentity, SecretKeyRef
from agentcred.models.task import LabelSelector

KINDS = ("vault", "aws_secrets_manager", "aws_sts", "gcp_secret_manager", "azure_key_vault")


@dataclass(frozen=True)
class KubernetesAuthMethod:
    mount: str = "kubernetes"
    audience: str = "vault"


@dataclass(frozen=True)
class AppRoleAuthMethod:
    role_id: str
    secret_id_ref: SecretKeyRef  # a Secret in the operator's namespace
    mount: str = "approle"


@dataclass(frozen=True)
class TokenAuthMethod:
    secret_ref: SecretKeyRef  # a Secret in the operator's namespace


@dataclass(frozen=True)
class VaultAuthMethod:
    kubernetes: KubernetesAuthMethod | None = None
    app_role: AppRoleAuthMethod | None = None
    token: TokenAuthMethod | None = None


@dataclass(frozen=True)
class VaultBackend:
    address: str
    auth: VaultAuthMethod
    allowed_paths: tuple[str, ...] = ()
    allowed_roles: tuple[str, ...] | None = None  # None: any role (Vault checks its binding)
    namespace: str | None = None
    ca_bundle: str | None = None
    allowed_params: tuple[str, ...] = ()  # dynamic.params names a tenant may send: none
    allowed_write_paths: tuple[str, ...] = ()  # paths a non-GET dynamic request may go to
    allow_unleased: bool = False  # accept dynamic responses without a lease (unrevocable)


@dataclass(frozen=True)
class SecretsManagerBackend:
    allowed_secrets: tuple[str, ...] = ()
    region: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class StsBackend:
    allowed_role_arns: tuple[str, ...] = ()
    region: str | None = None
    endpoint: str | None = None
    web_identity: AwsWebIdentity | None = None


@dataclass(frozen=True)
class GcpBackend:
    allowed_secrets: tuple[str, ...] = ()
    project: str | None = None
    endpoint: str | None = None
    transport: str = "grpc"


@dataclass(frozen=True)
class AzureBackend:
    vault_url: str
    allowed_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalPolicy:
    """``spec.approval``: a person must approve a task's credentials before they are
    issued, all of them (``required``) or those whose requested name matches
    ``requiredFor`` (the allow-list syntax); ``timeout`` None means 1 h (models/approval.py)."""

    required: bool = False
    required_for: tuple[str, ...] = ()
    timeout: timedelta | None = None


@dataclass(frozen=True)
class CredentialBackendSpec:
    namespace_selector: LabelSelector
    allow_insecure_http: bool = False
    max_ttl: timedelta | None = None
    vault: VaultBackend | None = None
    aws_secrets_manager: SecretsManagerBackend | None = None
    aws_sts: StsBackend | None = None
    gcp_secret_manager: GcpBackend | None = None
    azure_key_vault: AzureBackend | None = None
    approval: ApprovalPolicy | None = None

    @property
    def kind(self) -> str:
        """The backend kind: vault, awsSecretsManager, awsSts, gcpSecretManager, azureKeyVault."""
        return json_name(next(f for f in KINDS if getattr(self, f) is not None))


def parse_backend_spec(spec: Mapping[str, Any]) -> CredentialBackendSpec:
    """Parse and check what the schema cannot express in types; raise SpecError."""
    parsed = build(CredentialBackendSpec, spec, "spec")
    if sum(getattr(parsed, f) is not None for f in KINDS) != 1:
        raise SpecError("spec", "exactly one backend block must be set")
    if parsed.vault is not None:
        auth = parsed.vault.auth
        if sum(m is not None for m in (auth.kubernetes, auth.app_role, auth.token)) != 1:
            raise SpecError(
                "spec.vault.auth", "needs exactly one method: kubernetes, appRole or token"
            )
    return parsed
