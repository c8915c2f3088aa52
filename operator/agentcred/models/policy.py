"""May this namespace's credential be issued through this backend, and as what?

The one place the trust model is decided, as pure functions (no I/O), so every rule is
unit-tested and the callers (issuance, the AgentCredential's Ready check) only act on
the answer. :func:`authorize` checks a tenant's ``AgentCredential`` against the
platform's ``CredentialBackend``:

* the backend's ``namespaceSelector`` must select the credential's namespace;
* the credential's block must be of the backend's kind;
* the backend's allow-lists must be unambiguous (models/patterns.py): a placeholder
  delimited on both sides by the start or end, ``/`` or a character the name cannot
  hold, never touching ``*``; a backend that breaks this (one written before the CRD's
  rule) raises :class:`UnsafePattern` and nothing is issued through it;
* the path / secret / role it names must match the backend's allow-list, after
  ``{namespace}`` and ``{serviceAccount}`` are substituted; ``*`` matches within one
  path segment (never across ``/``); no allow-list means nothing is allowed;
* when the credential lists ``serviceAccounts``, the task's must be one of them;
* a plain ``http://`` address or endpoint needs ``allowInsecureHTTP: true``;
* Vault ``dynamic.params`` only with names in ``allowedParams`` (none by default; an
  allowed ``ttl`` is capped by ``maxTTL``), and any method but GET only on paths in
  ``allowedWritePaths`` (``allowedPaths`` allows reading only);
* an STS backend whose ``maxTTL`` cannot hold STS's shortest session serves nothing;

and returns the :class:`ResolvedCredential` a backend works from: the connection from
the backend, the request and timings from the credential, ``ttl`` capped by ``maxTTL``.
Refusals raise :class:`NotAllowed` naming the field and the backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlsplit

from agentcred.models.backend import CredentialBackendSpec, VaultBackend
from agentcred.models.ceiling import GRACE, STS_MIN_SECONDS, capped_param_ttl, sts_fits
from agentcred.models.credential import AgentCredentialSpec, GcpSecretRequest, VaultRequest
from agentcred.models.duration import format_duration
from agentcred.models.errors import NotAllowed, SpecError, UnsafePattern
from agentcred.models.patterns import SAFE_AZURE, allow_list_problem, pattern_problem
from agentcred.models.resolved import (
    AwsSecretsManagerSpec,
    AwsStsSpec,
    AzureKeyVaultSpec,
    GcpSecretManagerSpec,
    ResolvedCredential,
    VaultAppRoleAuth,
    VaultAuth,
    VaultDynamic,
    VaultKubernetesAuth,
    VaultSpec,
)
from agentcred.models.selectors import matches

ANY = None  # service_account=ANY: "some ServiceAccount" (the Ready check has no task)


def glob_matches(pattern: str, value: str, *, namespace: str, service_account: str | None) -> bool:
    """``pattern`` with ``{namespace}``/``{serviceAccount}`` substituted, ``*`` within a segment."""
    regex = ""
    for part in re.split(r"(\{namespace\}|\{serviceAccount\}|\*)", pattern):
        if part == "{namespace}":
            regex += re.escape(namespace)
        elif part == "{serviceAccount}":
            regex += re.escape(service_account) if service_account else "[^/]+"
        elif part == "*":
            regex += "[^/]*"
        else:
            regex += re.escape(part)
    return re.fullmatch(regex, value) is not None


def allowed(
    patterns: tuple[str, ...], value: str, *, namespace: str, service_account: str | None
) -> bool:
    return any(
        glob_matches(p, value, namespace=namespace, service_account=service_account)
        for p in patterns
    )


def check_namespace(
    backend_name: str, backend: CredentialBackendSpec, namespace: str, labels: Mapping[str, str]
) -> None:
    if not matches(backend.namespace_selector, labels):
        raise NotAllowed(
            "spec.backendRef.name",
            f"CredentialBackend {backend_name} does not allow namespace {namespace} "
            "(its namespaceSelector does not select it)",
        )


def check_service_account(credential: AgentCredentialSpec, service_account: str | None) -> None:
    accounts = credential.service_accounts
    if accounts is not None and service_account is not None and service_account not in accounts:
        raise NotAllowed(
            "spec.serviceAccounts",
            f"ServiceAccount {service_account} is not one of {', '.join(accounts) or 'none'}",
        )


def check_url(backend_name: str, field: str, url: str, insecure_ok: bool) -> None:
    """An http(s) URL without credentials; plain http only where the backend allows it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    where = f"CredentialBackend {backend_name} {field}" if backend_name else field
    if host is None or parts.scheme not in ("http", "https"):
        raise SpecError(where, "must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise SpecError(where, "must not hold credentials")
    if parts.scheme == "http" and not insecure_ok:
        raise NotAllowed(
            where, "is plain http:// and the backend does not set allowInsecureHTTP: true"
        )


def allow_lists(backend: CredentialBackendSpec) -> list[tuple[str, tuple[str, ...], bool]]:
    """Each allow-list of the backend: (field, patterns, matched case-insensitively)."""
    found: list[tuple[str, tuple[str, ...], bool]] = []
    if backend.vault is not None:
        found.append(("spec.vault.allowedPaths", backend.vault.allowed_paths, False))
        found.append(("spec.vault.allowedWritePaths", backend.vault.allowed_write_paths, False))
        if backend.vault.allowed_roles is not None:
            found.append(("spec.vault.allowedRoles", backend.vault.allowed_roles, False))
    if backend.aws_secrets_manager is not None:
        found.append(
            (
                "spec.awsSecretsManager.allowedSecrets",
                backend.aws_secrets_manager.allowed_secrets,
                False,
            )
        )
    if backend.aws_sts is not None:  # IAM role names are case-insensitive
        found.append(("spec.awsSts.allowedRoleArns", backend.aws_sts.allowed_role_arns, True))
    if backend.gcp_secret_manager is not None:
        found.append(
            (
                "spec.gcpSecretManager.allowedSecrets",
                backend.gcp_secret_manager.allowed_secrets,
                False,
            )
        )
    if backend.azure_key_vault is not None:  # Key Vault names are case-insensitive
        found.append(
            ("spec.azureKeyVault.allowedSecrets", backend.azure_key_vault.allowed_secrets, True)
        )
    return found


def check_allow_lists(backend_name: str, backend: CredentialBackendSpec) -> None:
    """Raise :class:`UnsafePattern` naming the field and pattern when an allow-list of the
    backend could match one tenant's request for another (models/patterns.py)."""
    for field, patterns, case_insensitive in allow_lists(backend):
        problem = allow_list_problem(patterns, case_insensitive=case_insensitive)
        if problem is not None:
            if field == "spec.azureKeyVault.allowedSecrets":
                problem += f"; {SAFE_AZURE}"
            raise UnsafePattern(field, f"CredentialBackend {backend_name}: {problem}")
    if backend.approval is not None:  # the same rule per pattern, as the CRD's CEL has it
        case_insensitive = backend.aws_sts is not None or backend.azure_key_vault is not None
        for pattern in backend.approval.required_for:
            problem = pattern_problem(pattern, case_insensitive=case_insensitive)
            if problem is not None:
                raise UnsafePattern(
                    "spec.approval.requiredFor", f"CredentialBackend {backend_name}: {problem}"
                )


def authorize(
    backend_name: str,
    backend: CredentialBackendSpec,
    credential: AgentCredentialSpec,
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    service_account: str | None,
) -> ResolvedCredential:
    """The resolved credential, or NotAllowed / SpecError naming the field (UnsafePattern,
    a SpecError, when the backend's own allow-lists are ambiguous)."""
    check_allow_lists(backend_name, backend)
    check_namespace(backend_name, backend, namespace, namespace_labels)
    if credential.backend_kind != backend.kind:
        raise NotAllowed(
            f"spec.{credential.backend_kind}",
            f"CredentialBackend {backend_name} serves {backend.kind}, "
            f"not {credential.backend_kind}",
        )
    check_service_account(credential, service_account)
    ttl = credential.ttl
    if backend.max_ttl is not None and ttl > backend.max_ttl:
        ttl = backend.max_ttl
    base = ResolvedCredential(
        ttl=ttl,
        renewal_percent=credential.renewal_percent,
        refresh_interval=credential.refresh_interval,
        template=credential.template,
        allow_insecure_http=backend.allow_insecure_http,
        max_ttl=backend.max_ttl,
    )
    where = _Where(backend_name, backend, namespace, service_account)
    return where.merge(base, credential)


class _Where:
    """One authorization: the backend and the requester, shared by the per-kind checks."""

    def __init__(
        self,
        name: str,
        backend: CredentialBackendSpec,
        namespace: str,
        service_account: str | None,
    ) -> None:
        self.name, self.backend = name, backend
        self.namespace, self.service_account = namespace, service_account

    def require(self, patterns: tuple[str, ...], value: str, field: str, what: str) -> None:
        if not allowed(
            patterns, value, namespace=self.namespace, service_account=self.service_account
        ):
            raise NotAllowed(
                field,
                f"{what} {value!r} is not in the allow-list of CredentialBackend {self.name}",
            )

    def url(self, field: str, url: str | None) -> None:
        if url is not None:
            check_url(self.name, field, url, self.backend.allow_insecure_http)

    def merge(self, base: ResolvedCredential, cred: AgentCredentialSpec) -> ResolvedCredential:
        """``base`` with the kind's block: the request checked against the allow-list and
        joined with the backend's connection."""
        b = self.backend
        if cred.vault is not None and b.vault is not None:
            return replace(base, vault=self.vault(cred.vault, b.vault))
        if cred.aws_secrets_manager is not None and b.aws_secrets_manager is not None:
            req, conf = cred.aws_secrets_manager, b.aws_secrets_manager
            self.url("spec.awsSecretsManager.endpoint", conf.endpoint)
            self.require(
                conf.allowed_secrets, req.secret_id, "spec.awsSecretsManager.secretId", "secret"
            )
            return replace(
                base,
                aws_secrets_manager=AwsSecretsManagerSpec(
                    secret_id=req.secret_id,
                    region=conf.region,
                    version_stage=req.version_stage,
                    version_id=req.version_id,
                    key=req.key,
                    endpoint=conf.endpoint,
                ),
            )
        if cred.aws_sts is not None and b.aws_sts is not None:
            return replace(base, aws_sts=self.sts(cred, base.ttl))
        if cred.gcp_secret_manager is not None and b.gcp_secret_manager is not None:
            return replace(base, gcp_secret_manager=self.gcp(cred.gcp_secret_manager))
        if cred.azure_key_vault is not None and b.azure_key_vault is not None:
            req_az, conf_az = cred.azure_key_vault, b.azure_key_vault
            self.url("spec.azureKeyVault.vaultUrl", conf_az.vault_url)
            self.require(conf_az.allowed_secrets, req_az.name, "spec.azureKeyVault.name", "secret")
            return replace(
                base,
                azure_key_vault=AzureKeyVaultSpec(
                    vault_url=conf_az.vault_url, name=req_az.name, version=req_az.version
                ),
            )
        raise NotAllowed("spec", f"CredentialBackend {self.name} serves {b.kind}")

    def vault(self, req: VaultRequest, conf: VaultBackend) -> VaultSpec:
        self.url("spec.vault.address", conf.address)
        dynamic = req.dynamic
        if dynamic is not None and dynamic.http_method != "GET":
            self.require_write(conf, dynamic)
        else:
            self.require(conf.allowed_paths, req.path, "spec.vault", "path")
        if dynamic is not None and dynamic.params:
            dynamic = self.params(conf, dynamic)
        method = conf.auth
        if method.kubernetes is not None:
            if not req.role:
                raise SpecError(
                    "spec.vault.role",
                    f"is required: CredentialBackend {self.name} logs in with kubernetes auth "
                    "as the task's ServiceAccount",
                )
            if conf.allowed_roles is not None:
                self.require(conf.allowed_roles, req.role, "spec.vault.role", "role")
            auth = VaultAuth(
                kubernetes=VaultKubernetesAuth(
                    role=req.role,
                    mount_path=method.kubernetes.mount,
                    audience=method.kubernetes.audience,
                )
            )
        elif req.role:
            raise SpecError(
                "spec.vault.role",
                f"must not be set: CredentialBackend {self.name} does not use kubernetes auth",
            )
        elif method.app_role is not None:
            role = method.app_role
            auth = VaultAuth(
                app_role=VaultAppRoleAuth(
                    role_id=role.role_id, secret_id_ref=role.secret_id_ref, mount_path=role.mount
                )
            )
        else:
            auth = VaultAuth(token_secret_ref=method.token.secret_ref if method.token else None)
        return VaultSpec(
            auth=auth,
            address=conf.address,
            namespace=conf.namespace,
            ca_bundle=conf.ca_bundle,
            dynamic=dynamic,
            kv=req.kv,
            allow_unleased=conf.allow_unleased,
        )

    def require_write(self, conf: VaultBackend, dynamic: VaultDynamic) -> None:
        """A request other than GET (a write in Vault's terms) needs ``allowedWritePaths``."""
        path = dynamic.path.strip("/")
        if allowed(
            conf.allowed_write_paths,
            path,
            namespace=self.namespace,
            service_account=self.service_account,
        ):
            return
        why = " (params are sent by POST unless method is GET)" if not dynamic.method else ""
        raise NotAllowed(
            "spec.vault.dynamic.method",
            f"{dynamic.http_method} to path {path!r} is not in the allowedWritePaths of "
            f"CredentialBackend {self.name}{why}; allowedPaths allows reading (GET) only",
        )

    def params(self, conf: VaultBackend, dynamic: VaultDynamic) -> VaultDynamic:
        """Only params the backend lists in ``allowedParams``; ``ttl`` capped by maxTTL."""
        given = dict(dynamic.params or {})
        for key in sorted(given):
            if key not in conf.allowed_params:
                raise NotAllowed(
                    f"spec.vault.dynamic.params.{key}",
                    f"param {key!r} is not in the allowedParams of CredentialBackend {self.name}",
                )
        if "ttl" in given:
            try:
                given["ttl"] = capped_param_ttl(given["ttl"], self.backend.max_ttl)
            except ValueError as exc:
                raise SpecError("spec.vault.dynamic.params.ttl", str(exc)) from None
        return replace(dynamic, params=given)

    def sts(self, cred: AgentCredentialSpec, ttl: timedelta) -> AwsStsSpec:
        req, conf = cred.aws_sts, self.backend.aws_sts
        if req is None or conf is None:  # pragma: no cover (checked by resolve)
            raise NotAllowed("spec.awsSts", "not an STS credential")
        self.url("spec.awsSts.endpoint", conf.endpoint)
        self.require(conf.allowed_role_arns, req.role_arn, "spec.awsSts.roleArn", "role")
        duration = req.duration_seconds
        cap = self.backend.max_ttl
        if cap is not None and not sts_fits(cap):
            raise NotAllowed(
                "spec.awsSts",
                f"CredentialBackend {self.name} has maxTTL {format_duration(cap)}: STS issues "
                f"no session shorter than {format_duration(timedelta(seconds=STS_MIN_SECONDS))},"
                f" which is more than maxTTL plus {format_duration(GRACE)} allows",
            )
        if duration is not None and cap is not None:
            duration = max(STS_MIN_SECONDS, min(duration, int(cap.total_seconds())))
        return AwsStsSpec(
            role_arn=req.role_arn,
            region=conf.region,
            duration_seconds=duration,
            session_policy=req.session_policy,
            web_identity=conf.web_identity,
            endpoint=conf.endpoint,
        )

    def gcp(self, req: GcpSecretRequest) -> GcpSecretManagerSpec:
        conf = self.backend.gcp_secret_manager
        if conf is None:  # pragma: no cover (checked by resolve)
            raise NotAllowed("spec.gcpSecretManager", "not a GCP credential")
        self.url("spec.gcpSecretManager.endpoint", conf.endpoint)
        full = re.fullmatch(r"projects/([^/]+)/secrets/([^/]+)", req.secret)
        if full:
            project, secret = full.group(1), full.group(2)
        elif conf.project:
            project, secret = conf.project, req.secret
        else:
            raise SpecError(
                "spec.gcpSecretManager.secret",
                f"must be projects/<project>/secrets/<id>: CredentialBackend {self.name} "
                "names no project",
            )
        name = f"projects/{project}/secrets/{secret}"
        self.require(conf.allowed_secrets, name, "spec.gcpSecretManager.secret", "secret")
        return GcpSecretManagerSpec(
            project=project,
            secret=secret,
            version=req.version,
            transport=conf.transport,
            endpoint=conf.endpoint,
        )
