"""Session fixtures: the real testbed (started once, reused if already up) and API clients.

If ``make testbed-up`` already started a testbed, the tests use it and leave it
running; otherwise the session starts one into ``.testbed`` and stops it at the end,
checking that no process it recorded is left alive.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from agentcred_testbed import incluster, node, procs, stack
from agentcred_testbed.procs import StateDir
from support.kube import apply_crds
from support.scenario import Scenario

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def testbed_env() -> Iterator[dict[str, str]]:

    state = StateDir(stack.default_root())
    reuse = (state.root / stack.ENV_FILE).exists() and stack.all_running(state)
    env = stack.up(state, log=lambda m: print(f"[testbed] {m}"))
    # A `make dev` operator watches every namespace and would race the tests' own; so
    # would the in-cluster one of `make dev NODE=1` (tests/e2e/node deploys its own).
    procs.stop(state, "operator")
    if node.running(state):
        incluster.remove(env)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if not reuse and not os.environ.get("AGENTCRED_KEEP_TESTBED"):
            stack.down(state)
            left = stack.leftovers(state)
            assert not left, f"testbed processes left behind: {left}"


@pytest.fixture(scope="session")
def kube(testbed_env: dict[str, str]) -> Iterator[client.ApiClient]:
    """A synchronous Kubernetes API client with the testbed's admin identity."""
    api = config.new_client_from_config(config_file=testbed_env["KUBECONFIG"])
    yield api
    api.close()


@pytest.fixture(scope="session")
def crds(kube: client.ApiClient) -> None:
    apply_crds(kube)


@pytest.fixture
def scene(kube: client.ApiClient, namespace: str, crds: None) -> Scenario:
    """The test's namespace, for a test that runs (and kills) the operator itself."""
    return Scenario(kube, namespace)


@pytest.fixture
def namespace(kube: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (the namespace controller empties it)."""
    core = client.CoreV1Api(kube)
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"agentcred.io/test": "true"}}})
    yield name
    _release_tasks(kube, name)
    core.delete_namespace(name)
    core.delete_collection_namespaced_secret(
        os.environ["AGENTCRED_NAMESPACE"], label_selector=f"agentcred.io/test-namespace={name}"
    )
    with contextlib.suppress(client.ApiException):  # no CRDs in this test: nothing to delete
        client.CustomObjectsApi(kube).delete_collection_cluster_custom_object(
            "agentcred.io",
            "v1alpha1",
            "credentialbackends",
            label_selector=f"agentcred.io/test-namespace={name}",
        )


def _release_tasks(kube: client.ApiClient, namespace: str) -> None:
    """Drop the finalizers of the test's AgentTasks before its namespace goes.

    The test's operator has stopped by now, so nobody would remove them: the namespace
    would stay Terminating for good and the namespace controller would re-list it without
    end, loading the API server for every later test.
    """
    custom = client.CustomObjectsApi(kube)
    with contextlib.suppress(client.ApiException):  # no CRDs in this test
        tasks = custom.list_namespaced_custom_object(
            "agentcred.io", "v1alpha1", namespace, "agenttasks"
        )["items"]
        for task in tasks:
            if task["metadata"].get("finalizers"):
                with contextlib.suppress(client.ApiException):
                    custom.patch_namespaced_custom_object(
                        "agentcred.io",
                        "v1alpha1",
                        namespace,
                        "agenttasks",
                        task["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )
