"""Fixtures for the suites on the testbed node: the node itself (started on first use,
stopped after the last test of this package if it was started for them, with a check
that it left nothing behind), the operator deployed in-cluster from its image by the
testbed overlay, and a scenario whose pods consume the generated Secrets.

Pods here carry the node's toleration (the node is tainted so that the pods other suites
create without a node stay unscheduled) and the label their task's ``podSelector`` uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from kubernetes import client

from agentcred_testbed import incluster, node, stack
from agentcred_testbed.procs import StateDir
from support import hygiene
from support.kube import wait_for
from support.node import NodeScenario, operator_logs, operator_pods


@pytest.fixture(scope="package")
def node_env(testbed_env: dict[str, str]) -> Iterator[dict[str, str]]:
    state = StateDir(stack.default_root())
    started = not node.running(state)
    env = dict(testbed_env)
    if started:
        env.update(node.up(state, testbed_env, log=lambda m: print(f"[node] {m}")))
        stack.write_env(state, env)
    else:
        env.update({k: v for k, v in stack.read_env(state).items() if k.startswith("NODE_")})
    os.environ.update(env)
    try:
        yield env
    finally:
        if started and not os.environ.get("AGENTCRED_KEEP_TESTBED"):
            node.down(state)
            # Pods whose deletion the kubelet had not confirmed yet (the last test's namespace
            # is still being emptied) would stay Terminating for good, and their namespace
            # with them: their containers went with the node, so their objects go now.
            incluster.kubectl(
                env,
                "delete",
                "pod",
                "--all-namespaces",
                f"--field-selector=spec.nodeName={node.NODE_NAME}",
                "--grace-period=0",
                "--force",
                check=False,
            )
            left = node.leftovers(state)
            assert not left, f"the node left behind: {left}"


@pytest.fixture(scope="package")
def in_cluster(
    kube: client.ApiClient, node_env: dict[str, str], crds: None
) -> Iterator[dict[str, str]]:
    """The operator as shipped (manifests/overlays/testbed), two replicas, one leader.
    Removed at the end: later suites run operators of their own, which it would race.

    A test's namespace is deleted while this operator still runs, so it re-adds the
    finalizers the namespace fixture strips and may not get through every deletion before
    it is removed: the tasks it left are released here, once it is gone (a deleted
    object never gets a finalizer back), or their namespace would stay Terminating."""
    incluster.deploy(node_env)
    try:
        yield node_env
    finally:
        incluster.remove(node_env)
        hygiene.release_stuck(kube)


@pytest.fixture
def steady(kube: client.ApiClient, in_cluster: dict[str, str]) -> dict[str, str]:
    """The operator at rest: both replicas Ready (none terminating) and one leader, as a
    test that kills replicas may have left it a moment ago."""

    def at_rest() -> bool:
        pods = operator_pods(kube)
        ready = [
            p
            for p in pods
            if all(c.ready for c in p.status.container_statuses or [False])  # type: ignore[attr-defined]
            and p.status.phase == "Running"
        ]
        return len(pods) == 2 and len(ready) == 2 and incluster.leader(in_cluster) is not None

    wait_for(at_rest, 180, "two Ready operator replicas and a leader")
    return in_cluster


@pytest.fixture
def node_scenario(
    kube: client.ApiClient, namespace: str, steady: dict[str, str]
) -> Iterator[NodeScenario]:
    in_cluster = steady
    scene = NodeScenario(kube, namespace, in_cluster)
    yield scene
    # No credential value in what the in-cluster operators logged, in Events or in status.
    values = {v for v in scene.values if len(v) >= 8}
    logs = operator_logs(in_cluster)
    leaked = [v[:3] + "..." for v in values if v in logs]
    assert not leaked, f"credential values in the operator pods' logs: {leaked}"
    events = " ".join(f"{e.message}" for e in scene.events())
    assert not [v for v in values if v in events], "credential values in Events"
    for plural in ("agenttasks", "agentcredentials"):
        items = scene.custom.list_namespaced_custom_object(
            "agentcred.io", "v1alpha1", scene.ns, plural
        )
        dumped = json.dumps([i.get("status", {}) for i in items["items"]])
        assert not [v for v in values if v in dumped], f"credential values in {plural} status"
