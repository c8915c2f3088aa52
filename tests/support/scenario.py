"""Build CredentialBackends, AgentCredentials and AgentTasks for a test namespace, and wait
for what the operator does.

Each test namespace gets its own cluster-scoped CredentialBackends (named after it,
selecting only it, labelled so the namespace fixture deletes them): ``backend`` makes
one explicitly; ``credential`` without ``backend=`` uses a default backend of the
credential's kind that points at the testbed's server and allows the paths tests use.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import Plural
from support.kube import GROUP, VERSION, create, wait_for

# Keys whose values are metadata, not secrets (they may appear in status).
NOT_SECRET = {"AWS_CREDENTIAL_EXPIRATION"}
TEST_NAMESPACE_LABEL = "agentcred.io/test-namespace"
KINDS = ("vault", "awsSecretsManager", "awsSts", "gcpSecretManager", "azureKeyVault")


def default_block(kind: str, env: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """A testbed backend block of ``kind`` allowing what the tests ask for."""
    if kind == "vault":
        return {
            "address": env["VAULT_ADDR"],
            "auth": {"kubernetes": {}},
            "allowedPaths": [
                "database/creds/*",
                "secret/data/*",
                "secret/data/*/*",
                "secret/data/*/*/*",
                "*/issue/*",
            ],
            # PKI issues by POST with params (lifecycle/test_engines.py): writes and params
            # are allow-listed apart from reads (security/test_issued_ttl_ceiling.py).
            "allowedWritePaths": ["*/issue/*"],
            "allowedParams": ["common_name", "ttl"],
        }
    if kind == "awsSecretsManager":
        return {
            "region": env["AWS_DEFAULT_REGION"],
            "endpoint": env["AWS_ENDPOINT_URL"],
            "allowedSecrets": ["*", "*/*", "*/*/*", "arn:aws:secretsmanager:*"],
        }
    if kind == "awsSts":
        return {
            "region": env["AWS_DEFAULT_REGION"],
            "endpoint": env["AWS_ENDPOINT_URL"],
            "allowedRoleArns": ["arn:aws:iam::*:role/*"],
        }
    if kind == "gcpSecretManager":
        return {
            "project": env["GCP_PROJECT"],
            "endpoint": env["GCP_SECRET_MANAGER_ENDPOINT"],
            "transport": "rest",
            "allowedSecrets": ["projects/*/secrets/*"],
        }
    raise ValueError(f"no default testbed backend for {kind}")


class Scenario:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.ns = api, namespace
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.values: set[str] = set()  # every secret value seen: must never leak

    def service_account(self, name: str = "agent") -> str:
        self.core.create_namespaced_service_account(self.ns, {"metadata": {"name": name}})
        return name

    def secret(self, name: str, data: dict[str, str]) -> None:
        self.values.update(data.values())
        self.core.create_namespaced_secret(
            self.ns, {"metadata": {"name": name}, "stringData": data}
        )

    def operator_secret(self, name: str, data: dict[str, str]) -> str:
        """A Secret in the operator's namespace (where a backend's appRole/token refs point)."""
        self.values.update(data.values())
        full = f"{self.ns}-{name}"
        self.core.create_namespaced_secret(
            os.environ["AGENTCRED_NAMESPACE"],
            {
                "metadata": {"name": full, "labels": {TEST_NAMESPACE_LABEL: self.ns}},
                "stringData": data,
            },
        )
        return full

    def backend(
        self, kind: str, block: dict[str, Any] | None = None, *, suffix: str = "", **spec: Any
    ) -> str:
        """A CredentialBackend of ``kind`` selecting only this namespace; returns its name.

        ``block`` defaults to the testbed's server of that kind; ``spec`` adds top-level
        fields (``maxTTL``, ``namespaceSelector``...). Plain http is allowed (testbed)."""
        name = f"{self.ns}-{kind.lower()}{suffix}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CredentialBackend",
            "metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: self.ns}},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.ns}},
                "allowInsecureHTTP": True,
                kind: block if block is not None else default_block(kind, os.environ),
                **spec,
            },
        }
        try:
            self.custom.create_cluster_custom_object(GROUP, VERSION, Plural.BACKENDS, body)
        except ApiException as exc:
            if exc.status != 409 or block is not None or spec:
                raise
        return name

    def credential(self, name: str, *, backend: str | None = None, **spec: Any) -> dict[str, Any]:
        """An AgentCredential (new API shape); ``backend`` defaults to this namespace's
        testbed backend of the credential's kind."""
        if backend is None:
            kind = next(k for k in KINDS if k in spec)
            backend = self.backend(kind)
        return self._create(
            "AgentCredential", {"name": name}, {"backendRef": {"name": backend}, **spec}
        )

    def task(
        self, name: str, credentials: list[str] | list[dict[str, str]], **spec: Any
    ) -> dict[str, Any]:
        refs = [c if isinstance(c, dict) else {"name": c} for c in credentials]
        return self._create("AgentTask", {"name": name}, {"credentials": refs, **spec})

    def _create(self, kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": metadata}
        return create(self.api, self.ns, {**body, "spec": spec})

    def issue(
        self, task: str, credential: str, **spec: Any
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Create ``task`` for ``credential`` and wait until it is Active: its status and the
        values of its Secret ``<task>-<credential>``."""
        self.task(task, [credential], **spec)
        status = self.wait_phase(task, "Active")
        data = self.read_secret(f"{task}-{credential}")
        assert data is not None, f"task {task} is Active without its Secret"
        return status, data

    def complete(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """Mark the task completed; its status once Succeeded."""
        self.patch_task(name, {"completed": True})
        return self.wait_phase(name, "Succeeded", timeout)

    def pod(self, name: str, labels: dict[str, str], owner: dict[str, str] | None = None) -> Any:
        """A pod with no node: it stays Pending (no kubelet) until a test sets its phase."""
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if owner:
            meta["ownerReferences"] = [owner]
        return self.core.create_namespaced_pod(
            self.ns,
            {
                "metadata": meta,
                "spec": {"containers": [{"name": "agent", "image": "registry.invalid/agent:1"}]},
            },
        )

    def set_pod_phase(self, name: str, phase: str) -> None:
        self.core.patch_namespaced_pod_status(name, self.ns, {"status": {"phase": phase}})

    def create_task_with_owner(
        self, name: str, credentials: list[str], owner: dict[str, str], **spec: Any
    ) -> dict[str, Any]:
        refs = [{"name": c} for c in credentials]
        return self._create(
            "AgentTask", {"name": name, "ownerReferences": [owner]}, {"credentials": refs, **spec}
        )

    def get_task(self, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.ns, Plural.TASKS, name
            )
            return result
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def status(self, name: str) -> dict[str, Any]:
        return (self.get_task(name) or {}).get("status") or {}

    def patch_task(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, Plural.TASKS, name, {"spec": spec}
        )

    def delete_task(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, Plural.TASKS, name)

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.status(name)).get("phase") == phase and s,
            timeout,
            f"task {name} phase {phase} (status: {self.status(name)})",
        )

    def wait_condition(self, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            for cond in self.status(name).get("conditions") or []:
                if cond.get("reason") == reason:
                    return dict(cond)
            return None

        return wait_for(
            check, timeout, f"task {name} condition reason {reason} (status: {self.status(name)})"
        )

    def read_secret(self, name: str) -> dict[str, str] | None:
        try:
            secret = self.core.read_namespaced_secret(name, self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        self.values.update(v for k, v in data.items() if k not in NOT_SECRET)
        return data

    def secret_object(self, name: str) -> Any:
        return self.core.read_namespaced_secret(name, self.ns)

    def events(self, name: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(self.ns).items
        return [e for e in items if name is None or e.involved_object.name == name]

    def event_reasons(self, name: str) -> set[str]:
        return {e.reason for e in self.events(name)}
