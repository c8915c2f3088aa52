"""Read and write the leader-election Lease (``coordination.k8s.io/v1``).

Three calls, each one request: read (None when absent), create, and replace at the
read ``resourceVersion`` so that of two replicas taking over at the same moment exactly
one wins (the other gets ``KubeConflict``). The decisions are in ``agentcred.models.leadership``.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client import ApiClient, CoordinationV1Api

from agentcred.kube.calls import call, get_or_none
from agentcred.kube.errors import subject
from agentcred.kube.objects import Body
from agentcred.models.api_names import OPERATOR_POD
from agentcred.models.leadership import LeadershipLease

LABELS = OPERATOR_POD  # the operator's own objects carry its pods' labels


async def read_leadership_lease(
    api: ApiClient, namespace: str, name: str
) -> LeadershipLease | None:
    body = await get_or_none(
        subject("Lease", namespace, name),
        CoordinationV1Api(api).read_namespaced_lease,
        name,
        namespace,
    )
    return None if body is None else LeadershipLease.from_body(body)


async def create_leadership_lease(
    api: ApiClient, namespace: str, name: str, record: LeadershipLease
) -> LeadershipLease:
    """Create the Lease holding ``record``; ``KubeConflict`` if another replica was first."""
    body = _leadership_lease_body(namespace, name, record)
    created = await call(
        subject("Lease", namespace, name),
        CoordinationV1Api(api).create_namespaced_lease,
        namespace,
        body,
    )
    return LeadershipLease.from_body(created)


async def replace_leadership_lease(
    api: ApiClient, namespace: str, name: str, record: LeadershipLease
) -> LeadershipLease:
    """Write ``record`` over the version it was read at; ``KubeConflict`` if it changed since."""
    body = _leadership_lease_body(namespace, name, record, resourceVersion=record.resource_version)
    replaced = await call(
        subject("Lease", namespace, name),
        CoordinationV1Api(api).replace_namespaced_lease,
        name,
        namespace,
        body,
    )
    return LeadershipLease.from_body(replaced)


def _leadership_lease_body(
    namespace: str, name: str, record: LeadershipLease, **metadata: Any
) -> Body:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace, "labels": LABELS, **metadata},
        "spec": record.spec(),
    }
