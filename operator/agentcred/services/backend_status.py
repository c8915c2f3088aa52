"""Is a CredentialBackend usable? Its spec, its address, its operator-side Secrets.

Feeds the backend's ``Ready`` condition, so the platform team sees a mistake (a plain
``http://`` address without ``allowInsecureHTTP``, a missing appRole Secret in the
operator's namespace, an allow-list pattern that could match another tenant's names:
reason ``InvalidBackend``) on the object they wrote, before a tenant trips over it.
Reachability is checked per AgentCredential (some backends need a secret name to check).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from agentcred.kube import secrets
from agentcred.kube.errors import KubeError, KubeNotFound
from agentcred.models.api_names import ConditionType, Reason
from agentcred.models.backend import CredentialBackendSpec, parse_backend_spec
from agentcred.models.errors import NotAllowed, SpecError, UnsafePattern
from agentcred.models.policy import check_allow_lists, check_url
from agentcred.models.resolved import SecretKeyRef
from agentcred.models.status import Condition, condition, merge_conditions
from agentcred.services.deps import Deps


def _urls(spec: CredentialBackendSpec) -> list[tuple[str, str]]:
    found = [
        ("spec.vault.address", spec.vault.address if spec.vault else None),
        (
            "spec.awsSecretsManager.endpoint",
            spec.aws_secrets_manager.endpoint if spec.aws_secrets_manager else None,
        ),
        ("spec.awsSts.endpoint", spec.aws_sts.endpoint if spec.aws_sts else None),
        (
            "spec.gcpSecretManager.endpoint",
            spec.gcp_secret_manager.endpoint if spec.gcp_secret_manager else None,
        ),
        (
            "spec.azureKeyVault.vaultUrl",
            spec.azure_key_vault.vault_url if spec.azure_key_vault else None,
        ),
    ]
    return [(field, url) for field, url in found if url]


def _refs(spec: CredentialBackendSpec) -> list[SecretKeyRef]:
    if spec.vault is None:
        return []
    auth = spec.vault.auth
    if auth.app_role is not None:
        return [auth.app_role.secret_id_ref]
    return [auth.token.secret_ref] if auth.token is not None else []


async def _problem(deps: Deps, name: str, spec: Mapping[str, Any]) -> tuple[str, str] | None:
    try:
        parsed = parse_backend_spec(spec)
        for field, url in _urls(parsed):
            check_url(name, field, url, parsed.allow_insecure_http)
        check_allow_lists(name, parsed)
    except UnsafePattern as exc:  # written before the CRD's rule: nothing is issued through it
        return Reason.INVALID_BACKEND, str(exc)
    except SpecError as exc:
        return Reason.INVALID_SPEC, str(exc)
    except NotAllowed as exc:
        return Reason.INSECURE_ADDRESS, str(exc)
    own = deps.settings.namespace
    for ref in _refs(parsed):
        try:
            await secrets.read_secret_value(deps.api, own, ref.name, ref.key)
        except KubeNotFound as exc:
            return Reason.SECRET_NOT_FOUND, f"{exc} (operator-side Secrets live in {own})"
        except KubeError as exc:
            return Reason.SECRET_UNREADABLE, str(exc)
    return None


async def evaluate(
    deps: Deps, name: str, spec: Mapping[str, Any], generation: int | None, old: Mapping[str, Any]
) -> dict[str, Any]:
    conditions = [cast(Condition, dict(c)) for c in old.get("conditions") or []]
    problem = await _problem(deps, name, spec)
    ready = condition(
        ConditionType.READY,
        ok=problem is None,
        reason=problem[0] if problem else Reason.ACCEPTED,
        message=problem[1] if problem else "spec valid; AgentCredentials may use this backend",
        generation=generation,
        now=deps.clock(),
    )
    result: dict[str, Any] = {"conditions": merge_conditions(conditions, ready)}
    if generation is not None:
        result["observedGeneration"] = generation
    return result
