"""The end-of-run check (support/hygiene.py) sees what a run can leave behind on the real
API server: a namespace stuck Terminating on an AgentTask's finalizer, a test
CredentialBackend, a lease record, a task in a namespace the run did not create; and
passes once they are gone."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import FINALIZER, Label
from support import hygiene
from support.kube import GROUP, VERSION
from support.scenario import TEST_NAMESPACE_LABEL

pytestmark = pytest.mark.e2e


def test_the_check_names_what_a_run_left_and_passes_once_it_is_gone(
    kube: client.ApiClient, testbed_env: dict[str, str], crds: None
) -> None:
    core, custom = client.CoreV1Api(kube), client.CustomObjectsApi(kube)
    own = testbed_env["AGENTCRED_NAMESPACE"]
    before = hygiene.baseline(kube, own)
    ns = f"hygiene-{uuid.uuid4().hex[:5]}"
    backend, record = f"{ns}-vault", f"agentcred-session-{uuid.uuid4()}"
    core.create_namespace({"metadata": {"name": ns, "labels": {"agentcred.io/test": "true"}}})
    try:
        leave_behind(kube, ns, backend, record, own)
        left = hygiene.leftovers(kube, before, own, wait=3)
        assert any(f"namespace {ns} stuck Terminating" in x and "'held'" in x for x in left), left
        assert f"CredentialBackend {backend}" in left
        assert f"lease record {own}/{record}" in left
        assert f"agenttasks default/{ns}" in left
    finally:
        hygiene.forget(kube, ns, own)  # what the namespace fixture does
        with contextlib.suppress(ApiException):
            custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "agenttasks", ns)
        with contextlib.suppress(ApiException):  # deleted above
            core.delete_namespace(ns)
        with contextlib.suppress(ApiException):
            custom.delete_cluster_custom_object(GROUP, VERSION, "credentialbackends", backend)
    assert hygiene.leftovers(kube, before, own, wait=60) == []


def leave_behind(kube: client.ApiClient, ns: str, backend: str, record: str, own: str) -> None:
    """A task with a finalizer in a namespace then deleted, a test backend, a record, a
    task in ``default``."""
    core, custom = client.CoreV1Api(kube), client.CustomObjectsApi(kube)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "agenttasks",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentTask",
            "metadata": {"name": "held", "finalizers": [FINALIZER]},
            "spec": {"credentials": [{"name": "db"}]},
        },
    )
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "credentialbackends",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CredentialBackend",
            "metadata": {"name": backend, "labels": {TEST_NAMESPACE_LABEL: ns}},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "allowInsecureHTTP": True,
                "vault": {
                    "address": os.environ["VAULT_ADDR"],
                    "auth": {"kubernetes": {}},
                    "allowedPaths": ["secret/data/*"],
                },
            },
        },
    )
    core.create_namespaced_secret(
        own,
        {
            "metadata": {
                "name": record,
                "labels": {Label.SESSION: "true", Label.TASK_NAMESPACE: ns},
            },
            "stringData": {"db": "{}"},
        },
    )
    core.delete_namespace(ns)
    # And a task in a namespace the run did not create.
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "agenttasks",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentTask",
            "metadata": {"name": ns},
            "spec": {"credentials": [{"name": "db"}]},
        },
    )
