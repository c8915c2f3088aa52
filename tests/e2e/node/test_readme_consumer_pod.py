"""README's "Consume the Secret from a pod" works as written on the node `make dev NODE=1`
leaves: the node without its taint (dev.py takes it off), the snippet's Pod exactly as the
README has it (no tolerations, the workload image the node imported) scheduled there, and
what it logs is the database user Vault made for the task."""

from __future__ import annotations

import pytest
import yaml

from agentcred_testbed import incluster, node
from support.kube import wait_for
from support.node import NodeScenario
from support.readme import consumer_pod

pytestmark = pytest.mark.e2e


def test_readmes_consumer_pod_runs_on_the_dev_node_as_written(
    node_scenario: NodeScenario,
) -> None:
    scene = node_scenario
    pod = consumer_pod()
    name = pod["metadata"]["name"]
    # What `make dev NODE=1` applies: research-db for research-agent, task claim-4711.
    account = scene.service_account("research-agent")
    scene.db_credential("research-db", account)
    _, data = scene.issue("claim-4711", "research-db", serviceAccountName=account)
    scene.values.update({data["password"]})

    with node.taint_as(scene.env, on=False):  # as make dev NODE=1 leaves the node
        incluster.kubectl(
            scene.env, "-n", scene.ns, "apply", "-f", "-", input_text=yaml.safe_dump(pod)
        )
        done = wait_for(
            lambda: (
                (p := scene.core.read_namespaced_pod(name, scene.ns)).status.phase
                in {"Succeeded", "Failed"}
                and p
            ),
            120,
            f"pod {name} finished",
            describe=scene.describe_pods,
        )
    assert done.status.phase == "Succeeded", scene.describe_pods()
    assert done.spec.node_name == node.NODE_NAME
    logged = scene.core.read_namespaced_pod_log(name, scene.ns)
    assert logged.strip() == data["username"]
