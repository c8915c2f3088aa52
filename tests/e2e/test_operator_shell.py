"""The operator process: uses the kubeconfig, handles both kinds, logs JSON, stops on SIGTERM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client

from agentcred.models.api_names import API_VERSION
from support.kube import create, get, wait_for
from support.operator import running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def test_operator_handles_both_kinds_logs_json_and_exits_cleanly_on_sigterm(
    kube: client.ApiClient,
    crds: None,
    namespace: str,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    Scenario(kube, namespace).credential(
        "research-db",
        vault={"role": "research-agent", "dynamic": {"path": "database/creds/readonly"}},
    )
    create(
        kube,
        namespace,
        {
            "apiVersion": API_VERSION,
            "kind": "AgentTask",
            "metadata": {"name": "claim-4711"},
            "spec": {"credentials": [{"name": "research-db"}]},
        },
    )
    with running_operator(testbed_env, tmp_path / "operator.log", "--namespace", namespace) as op:
        cred = wait_for(
            lambda: (
                get(kube, namespace, "AgentCredential", "research-db")
                .get("status", {})
                .get("backend")
            ),
            60,
            "AgentCredential status.backend",
        )
        assert cred == "vault"
        phase = wait_for(
            lambda: get(kube, namespace, "AgentTask", "claim-4711").get("status", {}).get("phase"),
            30,
            "AgentTask status.phase",
        )
        assert phase in {"Pending", "Active", "Failed"}  # handled (this role does not exist)
        assert op.terminate(timeout=30) == 0
    lines = [line for line in op.log_lines() if line.strip()]
    assert lines, "the operator logged nothing"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all("message" in r or "action" in r for r in records)  # log or audit record
    messages = " ".join(str(r.get("message")) for r in records)
    assert "agentcred 0.1.0 starting" in messages
