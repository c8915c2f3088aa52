"""Look up an AgentCredential's CredentialBackend and the namespace's labels, then ask
the pure policy (models/policy.py) whether the request is allowed.

Both come from the watch-fed cache (services/lookups.py, services/cluster_view.py): a
burst of tasks costs no read of either, and a platform's edit of a backend or a
namespace's labels applies to every issue that starts once the watch delivered it.

Nothing here talks to a credential backend: a refusal is decided from the cluster's
objects alone, so a request outside the allow-list never reaches the backend.

``quarantined`` answers whether a CredentialQuarantine matches a task (before any
backend call for it): with no quarantine in the operator's index it costs nothing; with
some, the facts matching needs (the namespace's labels, the CredentialBackends its
AgentCredentials name) come from the same cache as authorization.
"""

from __future__ import annotations

from agentcred.models.api_names import Reason
from agentcred.models.backend import parse_backend_spec
from agentcred.models.credential import AgentCredentialSpec
from agentcred.models.errors import NotAllowed, OperatorError, SpecError, UnsafePattern
from agentcred.models.policy import authorize
from agentcred.models.quarantine import Quarantine, TaskSubject
from agentcred.models.resolved import ResolvedCredential
from agentcred.services import cluster_view
from agentcred.services.deps import Deps
from agentcred.services.task_view import TaskView


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
    found = await cluster_view.backend(deps, backend_name)
    if found is None:
        raise Refused(
            Reason.BACKEND_NOT_FOUND,
            f"AgentCredential {credential_name}: CredentialBackend {backend_name} does not exist",
            permanent=False,
        )
    try:
        backend = parse_backend_spec(found)
    except SpecError as exc:
        raise Refused(
            Reason.INVALID_BACKEND,
            f"CredentialBackend {backend_name} cannot be used: {exc}",
            permanent=False,
        ) from None
    labels = await cluster_view.namespace_labels(deps, namespace)
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


async def quarantined(deps: Deps, task: TaskView) -> Quarantine | None:
    """The CredentialQuarantine that matches ``task`` (None: none does, or none exists)."""
    if not deps.quarantines:
        return None
    return deps.quarantines.first_match(await subject_of(deps, task))


async def subject_of(deps: Deps, task: TaskView) -> TaskSubject:
    """The task as quarantines match it; only what some quarantine asks for is looked up."""
    namespace = task.namespace
    labels = None
    if deps.quarantines.needs_namespace_labels:
        labels = await cluster_view.namespace_labels(deps, namespace)
    backends: tuple[str, ...] = ()
    if deps.quarantines.needs_backends:
        names = [await _backend_of(deps, namespace, ref.name) for ref in task.spec.credentials]
        backends = tuple(name for name in names if name)
    return TaskSubject(
        namespace=namespace,
        name=task.name,
        service_account=task.spec.service_account_name,
        credentials=tuple(ref.name for ref in task.spec.credentials),
        labels=task.labels,
        namespace_labels=labels,
        backends=backends,
    )


async def _backend_of(deps: Deps, namespace: str, credential: str) -> str | None:
    """The CredentialBackend an AgentCredential names (None: no such credential)."""
    spec = await cluster_view.credential(deps, namespace, credential)
    name = ((spec or {}).get("backendRef") or {}).get("name")
    return name if isinstance(name, str) else None
