"""Look up an AgentCredential's CredentialBackend and the namespace's labels, then ask
the pure policy (models/policy.py) whether the request is allowed.

Both lookups are kept for ``LOOKUP_SECONDS`` (2 s, services/lookups.py): a burst of
tasks in one namespace costs one read of each, and a platform's edit of a backend or a
namespace's labels applies to every issue that starts 2 s later.

Nothing here talks to a credential backend: a refusal is decided from the cluster's
objects alone, so a request outside the allow-list never reaches the backend.
"""

from __future__ import annotations

from agentcred.kube import resources
from agentcred.models.api_names import Reason
from agentcred.models.backend import parse_backend_spec
from agentcred.models.credential import AgentCredentialSpec
from agentcred.models.errors import NotAllowed, OperatorError, SpecError, UnsafePattern
from agentcred.models.policy import authorize
from agentcred.models.resolved import ResolvedCredential
from agentcred.services.deps import Deps


class Refused(OperatorError):
    """The credential cannot be resolved; ``permanent`` when only a spec change helps."""

    def __init__(self, reason: str, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.permanent = reason, message, permanent


async def authorize_credential(
    deps: Deps,
    namespace: str,
    credential_name: str,
    credential: AgentCredentialSpec,
    service_account: str | None,
) -> ResolvedCredential:
    """The credential resolved against its backend, or ``Refused`` saying why."""
    backend_name = credential.backend_ref.name
    body = await deps.lookups.get(
        ("backend", backend_name), lambda: resources.get_backend(deps.api, backend_name)
    )
    if body is None:
        raise Refused(
            Reason.BACKEND_NOT_FOUND,
            f"AgentCredential {credential_name}: CredentialBackend {backend_name} does not exist",
            permanent=False,
        )
    try:
        backend = parse_backend_spec(body.get("spec") or {})
    except SpecError as exc:
        raise Refused(
            Reason.INVALID_BACKEND,
            f"CredentialBackend {backend_name} cannot be used: {exc}",
            permanent=False,
        ) from None
    labels = await deps.lookups.get(
        ("namespace", namespace), lambda: resources.namespace_labels(deps.api, namespace)
    )
    try:
        return authorize(
            backend_name,
            backend,
            credential,
            namespace=namespace,
            namespace_labels=labels or {},
            service_account=service_account,
        )
    except UnsafePattern as exc:  # the platform's allow-list, not the tenant's request
        raise Refused(
            Reason.INVALID_BACKEND,
            f"AgentCredential {credential_name}: nothing is issued through CredentialBackend "
            f"{backend_name} until its allow-list is fixed: {exc}",
            permanent=False,
        ) from None
    except NotAllowed as exc:
        raise Refused(
            Reason.NOT_ALLOWED, f"AgentCredential {credential_name}: {exc}", permanent=True
        ) from None
    except SpecError as exc:
        raise Refused(
            Reason.INVALID_CREDENTIAL, f"AgentCredential {credential_name}: {exc}", permanent=True
        ) from None
