"""The plugin's only door to the Kubernetes API: the user's kubeconfig, their identity.

Errors become ``PluginError`` with the exit code a script can test (``main.py`` lists
them): not found 3, forbidden 4, anything else 1. Responses are read as the server's
JSON. Never reads a Secret: nothing here could print a credential value.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from agentcred.models.api_names import GROUP, VERSION, Plural

MERGE_PATCH = "application/merge-patch+json"
EXIT_ERROR, EXIT_NOT_FOUND, EXIT_FORBIDDEN = 1, 3, 4
Body = dict[str, Any]


class PluginError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Api:
    """An API client as the user, and the namespace their kubeconfig context names."""

    raw: client.ApiClient
    namespace: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.raw)

    async def get_task(self, namespace: str, name: str) -> Body:
        return await self._call(
            f"AgentTask {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            Plural.TASKS,
            name,
        )

    async def list_tasks(self, namespace: str | None) -> list[Body]:
        if namespace is None:
            body = await self._call(
                "AgentTasks", self.custom.list_cluster_custom_object, GROUP, VERSION, Plural.TASKS
            )
        else:
            body = await self._call(
                f"AgentTasks in {namespace}",
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                Plural.TASKS,
            )
        return list(body.get("items") or [])

    async def patch_task(self, namespace: str, name: str, patch: Body) -> Body:
        return await self._call(
            f"AgentTask {namespace}/{name}",
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            Plural.TASKS,
            name,
            patch,
            _content_type=MERGE_PATCH,
        )

    async def task_events(self, namespace: str, uid: str) -> list[Body]:
        core = client.CoreV1Api(self.raw)
        body = await self._call(
            f"Events in {namespace}",
            core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.uid={uid}",
        )
        return list(body.get("items") or [])

    async def create_approval(self, namespace: str, body: Body) -> Body:
        return await self._call(
            f"AgentTaskApproval in {namespace}",
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            Plural.APPROVALS,
            body,
        )

    async def create_quarantine(self, body: Body) -> Body:
        return await self._call(
            "CredentialQuarantine",
            self.custom.create_cluster_custom_object,
            GROUP,
            VERSION,
            Plural.QUARANTINES,
            body,
        )

    async def get_quarantine(self, name: str) -> Body:
        return await self._call(
            f"CredentialQuarantine {name}",
            self.custom.get_cluster_custom_object,
            GROUP,
            VERSION,
            Plural.QUARANTINES,
            name,
        )

    async def delete_quarantine(self, name: str) -> Body:
        return await self._call(
            f"CredentialQuarantine {name}",
            self.custom.delete_cluster_custom_object,
            GROUP,
            VERSION,
            Plural.QUARANTINES,
            name,
        )

    async def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Body:
        try:
            response = await method(*args, _preload_content=False, **kwargs)
            data = await response.read()
            response.release()
            if not 200 <= response.status <= 299:
                exc = ApiException(status=response.status, reason=response.reason)
                exc.body = data
                raise exc
        except ApiException as exc:
            raise _error(what, exc) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PluginError(f"{what}: cannot reach the API server ({exc})") from None
        result: Body = json.loads(data) if data else {}
        return result


def _error(what: str, exc: ApiException) -> PluginError:
    said = server_message(exc.body)
    if exc.status == 404:
        return PluginError(f"{what} not found", EXIT_NOT_FOUND)
    if exc.status in (401, 403):
        why = said or "your RBAC does not allow this"
        return PluginError(f"{what}: forbidden: {why}", EXIT_FORBIDDEN)
    answered = f"the API server answered {exc.status} {exc.reason or ''}".strip()
    return PluginError(f"{what}: {said or answered}")


def server_message(body: Any) -> str:
    """The API server's own message in an error answer (an admission policy's, RBAC's):
    what tells the user why. A Status object names no credential value."""
    try:
        parsed = json.loads(body) if body else None
    except (TypeError, ValueError):
        return ""
    return str(parsed.get("message") or "") if isinstance(parsed, dict) else ""


def kubeconfig_path(given: str | None) -> str:
    """``--kubeconfig``, else the first file of ``KUBECONFIG``, else ~/.kube/config."""
    path = given or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return os.path.expanduser(path.split(os.pathsep)[0])


@asynccontextmanager
async def connect(
    kubeconfig: str | None, context: str | None, impersonate: str | None = None
) -> AsyncIterator[Api]:
    """An ``Api`` from the user's kubeconfig (``--kubeconfig``, ``KUBECONFIG``, ~/.kube/config)."""
    path = kubeconfig_path(kubeconfig)
    configuration = client.Configuration()
    try:
        await config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
        _, active = config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError) as exc:
        raise PluginError(f"no usable kubeconfig: {exc}") from None
    if context:
        contexts, _ = config.list_kube_config_contexts(config_file=path)
        active = next((c for c in contexts if c.get("name") == context), active)
    namespace = str(((active or {}).get("context") or {}).get("namespace") or "default")
    raw = client.ApiClient(configuration)
    if impersonate:  # kubectl's --as: the API server checks you may impersonate them
        raw.set_default_header("Impersonate-User", impersonate)
    try:
        yield Api(raw, namespace)
    finally:
        await raw.close()
