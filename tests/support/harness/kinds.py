"""The resource types the fake API server serves, and how a request path names one.

Only what the operator's kube layer reaches: core Secrets, Pods, Events, Namespaces,
ServiceAccounts (for the ``token`` subresource), batch Jobs (a task's owner),
coordination Leases (leader election) and the four agentcred.io custom resources,
each with its status subresource.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentcred.models.api_names import GROUP, VERSION, Plural
from agentcred.models.api_names import Kind as ApiKind


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False  # a CRD's: writes to the object ignore status

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS = {
    k.plural: k
    for k in (
        Kind("", "v1", "secrets", "Secret"),
        Kind("", "v1", "pods", "Pod"),
        Kind("", "v1", "events", "Event"),
        Kind("", "v1", "serviceaccounts", "ServiceAccount"),
        Kind("", "v1", "namespaces", "Namespace", namespaced=False),
        Kind("batch", "v1", "jobs", "Job"),
        Kind("coordination.k8s.io", "v1", "leases", "Lease"),
        Kind(GROUP, VERSION, Plural.TASKS, ApiKind.TASK, status_subresource=True),
        Kind(
            GROUP,
            VERSION,
            Plural.CREDENTIALS,
            ApiKind.CREDENTIAL,
            status_subresource=True,
        ),
        Kind(GROUP, VERSION, Plural.APPROVALS, ApiKind.APPROVAL, status_subresource=True),
        Kind(
            GROUP,
            VERSION,
            Plural.BACKENDS,
            ApiKind.BACKEND,
            namespaced=False,
            status_subresource=True,
        ),
        Kind(
            GROUP,
            VERSION,
            Plural.QUARANTINES,
            ApiKind.QUARANTINE,
            namespaced=False,
            status_subresource=True,
        ),
    )
}
BY_KIND = {k.kind: k for k in KINDS.values()}


@dataclass(frozen=True)
class Target:
    """What a request path names: a collection (``name`` empty) or one object."""

    kind: Kind
    namespace: str  # "" for cluster-scoped objects and lists across all namespaces
    name: str = ""
    subresource: str = ""


class UnknownPath(LookupError):
    """A path this fake does not serve (the test should extend ``KINDS``)."""


def parse_path(path: str) -> Target:
    """``/api/v1/namespaces/a/secrets/b`` → Target(secrets, "a", "b")."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        raise UnknownPath(path)
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in KINDS or KINDS[rest[0]].group != group:
        raise UnknownPath(path)
    kind = KINDS[rest[0]]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    return Target(kind, namespace, name, subresource)
