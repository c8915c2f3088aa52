"""Objects a harness test starts from: backends, credentials, tasks, pods, namespaces.

Small functions returning the API server's JSON, with defaults that make a working
task: a namespace ``team-a`` with ServiceAccount ``agent``, a CredentialBackend
``backend`` of the kind asked for (allowing what the credentials below ask), an
AgentCredential ``db`` (Vault dynamic), and a task ``t1`` using it. A task carries
Kopf's finalizer, as Kopf adds it before the create handler runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentcred.models.api_names import API_VERSION
from support.harness.store import Body

NAMESPACE = "team-a"
OPERATOR_NAMESPACE = "agentcred-system"
ACCOUNT = "agent"
GROUP_VERSION = API_VERSION

BACKEND_BLOCKS: dict[str, Body] = {
    "vault": {
        "address": "https://vault.harness:8200",
        "auth": {"kubernetes": {}},
        "allowedPaths": ["database/creds/*", "secret/data/*"],
    },
    "awsSecretsManager": {"region": "eu-west-1", "allowedSecrets": ["*"]},
    "awsSts": {"region": "eu-west-1", "allowedRoleArns": ["arn:aws:iam::*:role/*"]},
}
REQUESTS: dict[str, Body] = {
    "vault": {"role": "agent", "dynamic": {"path": "database/creds/app"}},
    "vault-kv": {"role": "agent", "kv": {"path": "app"}},
    "awsSecretsManager": {"secretId": "app"},
    "awsSts": {"roleArn": "arn:aws:iam::123456789012:role/agent"},
}


def namespace(name: str = NAMESPACE, labels: Mapping[str, str] | None = None) -> Body:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, "", labels)}


def service_account(name: str = ACCOUNT, ns: str = NAMESPACE) -> Body:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns)}


def credential_backend(name: str = "backend", kind: str = "vault", **spec: Any) -> Body:
    block = BACKEND_BLOCKS[kind]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "CredentialBackend",
        "metadata": _meta(name, ""),
        "spec": {"namespaceSelector": {}, kind: dict(block), **spec},
    }


def agent_credential(
    name: str = "db",
    *,
    request: str = "vault",
    backend: str = "backend",
    ns: str = NAMESPACE,
    ttl: str = "10m",
    **spec: Any,
) -> Body:
    """``request`` names a block of ``REQUESTS`` (its kind: the part before ``-``)."""
    kind = request.split("-", maxsplit=1)[0]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AgentCredential",
        "metadata": _meta(name, ns),
        "spec": {
            "backendRef": {"name": backend},
            kind: dict(REQUESTS[request]),
            "ttl": ttl,
            **spec,
        },
    }


def agent_task(
    name: str = "t1",
    *,
    credentials: Sequence[str] = ("db",),
    ns: str = NAMESPACE,
    account: str = ACCOUNT,
    pod_selector: Mapping[str, Any] | None = None,
    deadline: int | None = None,
    completed: bool = False,
    status: Mapping[str, Any] | None = None,
    finalizers: Sequence[str] = (),
    annotations: Mapping[str, str] | None = None,
) -> Body:
    """An AgentTask; ``finalizers``/``annotations``: e.g. what an operator from before
    issue 22 left on it (FINALIZER, KOPF_TASK_ANNOTATIONS), none on a new one."""
    spec: Body = {
        "serviceAccountName": account,
        "credentials": [{"name": c} for c in credentials],
    }
    if pod_selector is not None:
        spec["podSelector"] = dict(pod_selector)
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if completed:
        spec["completed"] = True
    body: Body = {
        "apiVersion": GROUP_VERSION,
        "kind": "AgentTask",
        "metadata": _meta(name, ns),
        "spec": spec,
    }
    if finalizers:
        body["metadata"]["finalizers"] = list(finalizers)
    if annotations:
        body["metadata"]["annotations"] = {
            **(body["metadata"].get("annotations") or {}),
            **annotations,
        }
    if status is not None:
        body["status"] = dict(status)
    return body


def pod(name: str, labels: Mapping[str, str], phase: str = "Running", ns: str = NAMESPACE) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(name, ns, labels),
        "spec": {"serviceAccountName": ACCOUNT, "containers": [{"name": "agent"}]},
        "status": {"phase": phase},
    }


def world(*, request: str = "vault", task: Body | None = None) -> list[Body]:
    """The usual start: namespace, ServiceAccount, a backend and a credential of
    ``request``'s kind, and ``task`` (default: ``t1`` using ``db``)."""
    return [
        namespace(),
        service_account(),
        credential_backend(kind=request.split("-", maxsplit=1)[0]),
        agent_credential(request=request),
        task if task is not None else agent_task(),
    ]


def _meta(name: str, ns: str, labels: Mapping[str, str] | None = None) -> Body:
    meta: Body = {"name": name}
    if ns:
        meta["namespace"] = ns
    if labels:
        meta["labels"] = dict(labels)
    return meta
