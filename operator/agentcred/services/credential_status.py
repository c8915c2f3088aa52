"""Is an AgentCredential usable? Spec, its CredentialBackend's permission, template,
the backend's operator-side Secrets, backend reachability.

A request the backend does not allow is reported (``NotAllowed``) without any call to
the backend, so the Ready condition is no oracle for secrets outside the allow-list.

Feeds its ``Ready`` condition (plus ``SpecValid``) so a platform engineer sees a broken
credential before any task trips over it. Re-run on every change and periodically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from agentcred.backends.base import BackendError
from agentcred.kube import secrets
from agentcred.kube.errors import KubeError, KubeNotFound
from agentcred.models.api_names import ConditionType, Reason
from agentcred.models.credential import parse_credential_spec
from agentcred.models.errors import SpecError
from agentcred.models.policy import ANY
from agentcred.models.resolved import ResolvedCredential, SecretKeyRef
from agentcred.models.status import Condition, CredentialResourceStatus, condition, merge_conditions
from agentcred.services.authorization import Refused, authorize_credential
from agentcred.services.deps import Deps
from agentcred.services.templating import TemplateError, fields_used


def _refs(spec: ResolvedCredential) -> list[SecretKeyRef]:
    if spec.vault is None:
        return []
    auth = spec.vault.auth
    refs = [auth.token_secret_ref] if auth.token_secret_ref else []
    if auth.app_role is not None:
        refs.append(auth.app_role.secret_id_ref)
    return refs


async def _problem(deps: Deps, namespace: str, spec: ResolvedCredential) -> tuple[str, str] | None:
    """(reason, message) of the first thing that keeps this credential from working."""
    try:
        backend = deps.backends.for_spec(spec)
        backend.validate(spec)
        fields_used(spec.template)
    except (BackendError, TemplateError) as exc:
        return (Reason.TEMPLATE_ERROR if isinstance(exc, TemplateError) else exc.reason), str(exc)
    for ref in _refs(spec):
        try:
            await secrets.read_secret_value(deps.api, deps.settings.namespace, ref.name, ref.key)
        except KubeNotFound as exc:
            return Reason.SECRET_NOT_FOUND, str(exc)
        except KubeError as exc:
            return Reason.SECRET_UNREADABLE, str(exc)
    try:
        async with deps.limits.slot(namespace, spec.target):
            await backend.check(spec)
    except BackendError as exc:
        return exc.reason, str(exc)
    return None


async def evaluate(
    deps: Deps,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    generation: int | None,
    old: Mapping[str, Any],
) -> CredentialResourceStatus:
    now = deps.clock()
    conditions = [cast(Condition, dict(c)) for c in old.get("conditions") or []]
    backend = ""
    try:
        parsed = parse_credential_spec(spec)
    except SpecError as exc:
        problem: tuple[str, str] | None = (Reason.INVALID_SPEC, str(exc))
        valid = condition(
            ConditionType.SPEC_VALID,
            ok=False,
            reason=Reason.INVALID_SPEC,
            message=str(exc),
            generation=generation,
            now=now,
        )
    else:
        backend = parsed.backend_kind
        valid = condition(
            ConditionType.SPEC_VALID,
            ok=True,
            reason=Reason.SPEC_VALID,
            message="spec parsed",
            generation=generation,
            now=now,
        )
        try:
            resolved = await authorize_credential(
                deps, namespace, name, parsed, service_account=ANY
            )
        except Refused as exc:
            problem = (exc.reason, exc.message)
        else:
            problem = await _problem(deps, namespace, resolved)
    if problem is None:
        ready = condition(
            ConditionType.READY,
            ok=True,
            reason=Reason.BACKEND_REACHABLE,
            message=f"{backend} backend reachable",
            generation=generation,
            now=now,
        )
    else:
        ready = condition(
            ConditionType.READY,
            ok=False,
            reason=problem[0],
            message=problem[1],
            generation=generation,
            now=now,
        )
    result = CredentialResourceStatus(
        backend=backend, conditions=merge_conditions(merge_conditions(conditions, valid), ready)
    )
    if generation is not None:
        result["observedGeneration"] = generation
    return result
