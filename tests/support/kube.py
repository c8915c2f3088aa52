"""Small wrappers over the synchronous Kubernetes client for tests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import GROUP, VERSION

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.2,
    describe: Callable[[], object] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        if last and not isinstance(last, AssertionError):
            return last
        time.sleep(interval)
    more = f"; {describe()}" if describe else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){more}")


def apply_crds(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    for path in sorted(p for p in (REPO / "crds").glob("*.yaml") if p.name != "kustomization.yaml"):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        try:
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            ext.create_custom_resource_definition(body)
        wait_for(lambda n=name: established(ext, n), 60, f"CRD {name} Established")


def established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(
        c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])
    )


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def create(
    api: client.ApiClient, namespace: str, body: dict[str, Any], dry_run: bool = False
) -> dict[str, Any]:
    plural = body["kind"].lower() + "s"
    kwargs = {"dry_run": "All"} if dry_run else {}
    result: dict[str, Any] = custom(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body, **kwargs
    )
    return result


def get(api: client.ApiClient, namespace: str, kind: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, kind.lower() + "s", name
    )
    return result


def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the testbed's kubectl against its cluster (2 minutes at most); never raises."""
    return subprocess.run(
        [env["KUBECTL"], *args],
        env=dict(os.environ, KUBECONFIG=env["KUBECONFIG"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
