"""`make dev NODE=1` and the in-cluster deploy (agentcred_testbed/dev.py, incluster.py,
node.py), without a cluster: kubectl is replaced by a recorder.

* The start-up race: the operator's start lists CredentialQuarantines, and Kopf retries a
  failed start only a minute later. `make dev` once applied three of the five CRDs, so on
  a fresh cluster (the cold first run) the other two were created by the overlay next to
  the operator's pods; and the deploy returned once a replica held the Lease, which comes
  before Kopf starts. Now every CRD is applied and Established first, and the deploy waits
  for the leader's own (Kopf's) health answer.
* The node `make dev NODE=1` leaves takes ordinary pods: its taint comes off, and a test
  run puts on (and back) what it needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentcred_testbed import chat_example, dev, incluster, node
from support.readme import consumer_pod

REPO = Path(__file__).resolve().parents[2]
ENV = {"KUBECTL": "kubectl", "KUBECONFIG": "/k"}


def test_make_dev_applies_every_crd_the_operator_serves() -> None:
    shipped = sorted(p.name for p in (REPO / "crds").glob("*.yaml") if p.stem != "kustomization")
    assert sorted(p.name for p in dev.crd_files()) == shipped
    assert "credentialquarantines.agentcred.io" in dev.crd_names()  # listed at its start


class Kubectl:
    """Records kubectl calls; answers ``kustomize`` with a small overlay and ``get`` with
    ``objects``."""

    def __init__(self, objects: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.objects = objects or {}

    def __call__(self, env: dict[str, str], *args: str, **kwargs: Any) -> str:
        self.calls.append((args, kwargs.get("input_text")))
        if args[0] == "kustomize":
            return yaml.safe_dump_all(OVERLAY)
        if args[0] == "get":
            return json.dumps(self.objects.get(args[1], {}))
        return ""

    def applied(self) -> list[list[str]]:
        return [
            [d["kind"] for d in yaml.safe_load_all(text or "") if d]
            for args, text in self.calls
            if args[0] == "apply"
        ]


OVERLAY = [
    {"kind": "CustomResourceDefinition", "metadata": {"name": "agenttasks.agentcred.io"}},
    {"kind": "Namespace", "metadata": {"name": "agentcred-system"}},
    {
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "credentialquarantines.agentcred.io"},
    },
    {
        "kind": "Deployment",
        "metadata": {"name": incluster.DEPLOYMENT},
        "spec": {"template": {"spec": {"containers": [{"name": "operator", "env": []}]}}},
    },
]


def test_the_deploy_serves_crds_first_and_waits_for_a_serving_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kubectl = Kubectl()
    monkeypatch.setattr(incluster, "kubectl", kubectl)
    answers = iter([False, False, True])  # the Lease held, Kopf not started yet, then serving
    monkeypatch.setattr(incluster, "leader_serving", lambda env: next(answers))
    monkeypatch.setattr(incluster.time, "sleep", lambda s: None)

    incluster.deploy(ENV)

    assert kubectl.applied() == [
        ["CustomResourceDefinition", "CustomResourceDefinition"],
        ["Namespace", "Deployment"],
    ]
    verbs = [args[0] for args, _ in kubectl.calls]
    assert verbs.index("wait") < [i for i, v in enumerate(verbs) if v == "apply"][1]
    (wait,) = [args for args, _ in kubectl.calls if args[0] == "wait"]
    assert "--for=condition=Established" in wait
    assert {"crd/agenttasks.agentcred.io", "crd/credentialquarantines.agentcred.io"} <= set(wait)
    assert next(answers, None) is None  # it waited until the leader served


def test_only_kopfs_health_answer_counts_as_serving() -> None:
    assert incluster.serves_as_leader(b"{}")  # Kopf's probe results
    assert not incluster.serves_as_leader(b'{"leader": false}')  # a stand-by's
    assert not incluster.serves_as_leader(b"<html>")


def test_the_operator_exports_spans_when_the_node_reaches_jaeger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(incluster, "kubectl", Kubectl())
    (deployment,) = [d for d in incluster.rendered(ENV) if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"] == []
    traced = {**ENV, "NODE_JAEGER_OTLP_ENDPOINT": "http://10.244.100.1:4318"}
    (deployment,) = [d for d in incluster.rendered(traced) if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://10.244.100.1:4318"}
    ]


class NodeTaints:
    """node._kubectl against one Node object's taints."""

    def __init__(self, taints: list[dict[str, str]]) -> None:
        self.taints = taints
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, env: dict[str, str], *args: str, input_text: str | None = None) -> str:
        self.calls.append(args)
        if args[0] == "get":
            return json.dumps({"spec": {"taints": self.taints}})
        if args[0] == "taint" and args[-1].endswith("-"):
            self.taints = [t for t in self.taints if t["key"] != node.TAINT_KEY]
        elif args[0] == "taint":
            self.taints.append({"key": node.TAINT_KEY, "effect": "NoSchedule"})
        return ""


TAINT = {"key": node.TAINT_KEY, "value": "true", "effect": "NoSchedule"}
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


def test_make_dev_takes_the_taint_off_and_keeps_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = NodeTaints([dict(TAINT), dict(NOT_READY)])
    monkeypatch.setattr(node, "_kubectl", fake)
    assert node.set_taint(ENV, on=False) is True
    assert fake.taints == [NOT_READY]
    assert node.set_taint(ENV, on=False) is False  # nothing to do: no second call
    assert [c[0] for c in fake.calls] == ["get", "taint", "get"]


def test_a_suite_taints_for_a_while_and_puts_back_what_it_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = NodeTaints([])
    monkeypatch.setattr(node, "_kubectl", fake)
    with node.taint_as(ENV, on=True):
        assert node.tainted(ENV)
    assert not node.tainted(ENV)
    fake.taints = [dict(TAINT)]
    with node.taint_as(ENV, on=True):
        pass
    assert node.tainted(ENV)  # it was on: left on
    with node.taint_as(ENV, on=False):
        assert not node.tainted(ENV)
    assert node.tainted(ENV)


def test_the_node_registers_tainted(tmp_path: Path) -> None:
    layout = {"cgroup": "agentcred-x"}
    config = node.kubelet_config(tmp_path, layout, 1, 2, "/ca.crt")
    assert {"key": node.TAINT_KEY, "value": "true", "effect": "NoSchedule"} in config[
        "registerWithTaints"
    ]


def test_readmes_consumer_pod_is_an_ordinary_pod_on_the_dev_nodes_image() -> None:
    pod = consumer_pod()
    assert pod["kind"] == "Pod"
    assert not {"tolerations", "nodeName", "nodeSelector", "affinity"} & set(pod["spec"])
    assert pod["spec"]["containers"][0]["image"] == node.WORKLOAD_IMAGE
    secret = pod["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "claim-4711-research-db", "key": "DATABASE_URL"}


def test_the_examples_database_url_points_where_the_testbed_serves() -> None:
    docs = yaml.safe_load_all((REPO / "examples" / "research-db.yaml").read_text())
    (credential,) = [d for d in docs if d["kind"] == "AgentCredential"]
    chat_example.point_database(credential, "10.244.100.1:41234/app")
    assert credential["spec"]["template"]["DATABASE_URL"].endswith("@10.244.100.1:41234/app")
