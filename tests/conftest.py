"""Session fixtures: the real testbed (started once, reused if already up) and API clients.

If ``make testbed-up`` (or ``make dev``) already started a testbed, the tests use it and
leave it running; otherwise the session starts one into ``.testbed`` and stops it at the
end, checking that no process it recorded is left alive.

Whatever ``make dev`` left (either form) is set aside first: its operator stopped, the
in-cluster one removed, namespaces an earlier run left ``Terminating`` released. The run
must leave the testbed as it found it: at the end, namespaces it created still there,
test CredentialBackends, lease records or child processes fail it (support/hygiene.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from shlex import quote

import pytest
from kubernetes import client, config

from agentcred_testbed import incluster, node, procs, stack
from agentcred_testbed.procs import StateDir
from support import hygiene, tools
from support.kube import apply_crds
from support.scenario import Scenario

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def no_process_left() -> Iterator[None]:
    """Fails the run if a process a test started outlives it (the testbed's own servers,
    recorded by PID, aside: they are checked when the testbed stops)."""
    yield
    state = StateDir(stack.default_root())
    servers = {procs.pid_of(state, p.stem) for p in state.pids.glob("*.pid")}
    left = hygiene.live_children({p for p in servers if p is not None})
    assert not left, f"processes the tests started are still running: {left}"


@pytest.fixture(scope="session", autouse=True)
def tools_prebuilt(
    no_process_left: None, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Start building what the selected tests will need (helm, promtool, argocd-lua; the
    node's kubelet and kube-scheduler) in the background at once; cached, it costs nothing.
    Stopped before the process check (support/tools.py: Prebuild)."""
    items = request.session.items
    wanted = {
        tool
        for item in items
        for fixture, tool in tools.FIXTURES.items()
        if fixture in getattr(item, "fixturenames", ())
    }
    log = tmp_path_factory.getbasetemp() / "prebuild.log"
    if wanted:  # one tool per run of the script: its lock is free between two tools, so
        # a test needing helm never waits for promtool (GitOps runs before monitoring)
        script = quote(str(tools.BUILD_SCRIPT))
        names = " ".join(sorted(wanted))  # argocd-lua, helm, promtool: the order of use
        tools.Prebuild.start(["-c", f"for t in {names}; do bash {script} $t; done"], log)
    if any(Path(str(item.fspath)).is_relative_to(REPO / "tests/e2e/node") for item in items):
        # The control plane first (cached: at once; cold: the testbed waits for it anyway).
        build = quote(str(REPO / "scripts/build-kube.sh"))
        tools.Prebuild.start(["-c", f"bash {build} >/dev/null && bash {build} node"], log)
    yield
    tools.Prebuild.stop()


@pytest.fixture(scope="session")
def testbed_env() -> Iterator[dict[str, str]]:

    state = StateDir(stack.default_root())
    reuse = (state.root / stack.ENV_FILE).exists() and stack.all_running(state)
    env = stack.up(state, log=lambda m: print(f"[testbed] {m}"))
    # A `make dev` operator watches every namespace and would race the tests' own; so
    # would the in-cluster one of `make dev NODE=1` (tests/e2e/node deploys its own).
    procs.stop(state, "operator")
    node_running = node.running(state)
    incluster.remove(env, node_running=node_running)
    # `make dev NODE=1` leaves its node untainted (a newcomer's pods run there); the suites'
    # node-less pods must stay Pending, so the run taints it and puts back what it found.
    node_was_tainted = node.set_taint(env, on=True) if node_running else True
    api = config.new_client_from_config(config_file=env["KUBECONFIG"])
    released = hygiene.release_stuck(api)
    if released:
        print(f"[testbed] released namespaces an earlier run left Terminating: {released}")
    before = hygiene.baseline(api, env["AGENTCRED_NAMESPACE"])
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
        left = hygiene.leftovers(api, before, env["AGENTCRED_NAMESPACE"])
        assert not left, f"the run left behind (see support/hygiene.py): {left}"
    finally:
        if not node_was_tainted and node.running(state):
            node.set_taint(env, on=False)
        api.close()
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
    hygiene.forget(kube, name, os.environ["AGENTCRED_NAMESPACE"])
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
