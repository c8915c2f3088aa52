"""Placeholders that cannot collide (issue 18, class 1). With ``{namespace}-*`` namespace
``team-a`` was allowed ``team-a-prod-db``, namespace ``team-a-prod``'s secret. The CRD
refuses such a pattern (CEL, naming it and the safe forms); a backend stored before the
rule, or one whose patterns only collide with each other, is ``Ready=False``, reason
``InvalidBackend``, and a tenant's task through it waits with that reason: nothing is
written to the namespace and nothing is sent to the backend (the attacker's listener).

A backend "stored before the rule" is written straight into the testbed's etcd, as the
API server stored it when the CRD had no rule: the CRD is shared by every test running
against the testbed, so it is never swapped for an older one here.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_tenant_attacks import AGENT, tenant_create, written

from agentcred.models.api_names import EventReason, Reason
from agentcred_testbed import procs, stack
from agentcred_testbed.procs import StateDir
from support.kube import GROUP, VERSION, wait_for
from support.listener import Listener
from support.scenario import TEST_NAMESPACE_LABEL, Scenario
from support.tenant import grant_impersonation

pytestmark = pytest.mark.e2e

PREFIX, GLUED = "{namespace}-*", "*-{namespace}/*"


def backend_body(scene: Scenario, name: str, kind: str, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CredentialBackend",
        "metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: scene.ns}},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": scene.ns}},
            "allowInsecureHTTP": True,
            kind: block,
        },
    }


def blocks(attacker: Listener, vault: str, cloud: str) -> dict[str, dict[str, Any]]:
    """A Vault and an AWS Secrets Manager backend at the attacker's host."""
    return {
        "vault": {
            "address": attacker.http_url,
            "auth": {"kubernetes": {}},
            "allowedPaths": [vault],
        },
        "awsSecretsManager": {
            "region": "us-east-1",
            "endpoint": attacker.http_url,
            "allowedSecrets": [cloud],
        },
    }


def test_the_crd_refuses_a_pattern_that_can_collide(scenario: Scenario, attacker: Listener) -> None:
    """Both prefix forms for Vault and AWS Secrets Manager, and the neighbours of the
    rule: the API server's message names the pattern and the safe forms."""
    cases = [
        ("vault", "database/creds/{namespace}-*", "database/creds/{namespace}_*"),
        ("vault", "*-{namespace}/*", "secret/data/{namespace}/*"),
        ("awsSecretsManager", PREFIX, "{namespace}/*"),
        ("awsSecretsManager", GLUED, "{namespace}/*"),
        ("awsSecretsManager", "{namespace}-{serviceAccount}", "{namespace}/*"),
        ("awsSecretsManager", "*_{namespace}_*", "{namespace}/*"),
        ("awsSecretsManager", "agents/{serviceAccount}", "agents/{namespace}/{serviceAccount}"),
    ]
    for i, (kind, bad, safe) in enumerate(cases):
        body = backend_body(
            scenario, f"{scenario.ns}-bad-{i}", kind, blocks(attacker, bad, bad)[kind]
        )
        with pytest.raises(ApiException) as info:
            scenario.custom.create_cluster_custom_object(GROUP, VERSION, "credentialbackends", body)
        assert info.value.status == 422, info.value.body
        message = json.loads(info.value.body)["message"]
        assert f"pattern '{bad}'" in message, message
        assert safe in message, message
    azure = {"vaultUrl": attacker.https_url, "allowedSecrets": ["{namespace}X*"]}
    with pytest.raises(ApiException) as info:
        scenario.custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "credentialbackends",
            backend_body(scenario, f"{scenario.ns}-az", "azureKeyVault", azure),
        )
    assert "use {namespace} as the whole name" in json.loads(info.value.body)["message"]
    for kind, block in blocks(attacker, "database/creds/{namespace}_*", "{namespace}/*").items():
        scenario.custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "credentialbackends",
            backend_body(scenario, f"{scenario.ns}-ok-{kind.lower()}", kind, block),
        )
    assert attacker.connections == 0


def etcd_url() -> str:
    """The testbed's etcd (the API server's storage), from the command line it runs with."""
    pid = procs.pid_of(StateDir(stack.default_root()), "etcd")
    # The testbed always runs its own etcd: without it this proof cannot be made, which is
    # a broken testbed, not a reason to skip.
    assert pid is not None, (
        "the testbed's etcd is not running (needed to store a backend from before the CRD's rule)"
    )
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    flag = "--listen-client-urls="
    return next(a for a in args if a.startswith(flag))[len(flag) :].split(",")[0]


def store_as_before_the_rule(body: dict[str, Any]) -> None:
    """Put ``body`` where the API server keeps CredentialBackends, as it stored objects
    before the CRD had its rule (the API server's watch sees it like any other write)."""
    meta = body["metadata"]
    meta.update(
        uid=str(uuid.uuid4()),
        generation=1,
        creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    key = f"/registry/{GROUP}/credentialbackends/{meta['name']}"
    put = {
        "key": base64.b64encode(key.encode()).decode(),
        "value": base64.b64encode(json.dumps(body).encode()).decode(),
    }
    response = urllib3.request("POST", f"{etcd_url()}/v3/kv/put", json=put, timeout=10)
    assert response.status == 200, response.data


def backend_ready(scene: Scenario, name: str) -> dict[str, Any] | None:
    try:
        obj = scene.custom.get_cluster_custom_object(GROUP, VERSION, "credentialbackends", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def credential_ready(scene: Scenario, name: str) -> dict[str, Any] | None:
    obj = scene.custom.get_namespaced_custom_object(
        GROUP, VERSION, scene.ns, "agentcredentials", name
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def test_a_backend_that_slipped_past_the_rule_issues_nothing(
    scenario: Scenario,
    tenant: client.ApiClient,
    attacker: Listener,
    testbed_env: dict[str, str],
) -> None:
    """As the tenant, ask each colliding backend for a name another namespace owns
    (``<ns>-prod-db`` is namespace ``<ns>-prod``'s): refused, visibly, silently."""
    ns = scenario.ns
    scenario.service_account(AGENT)
    grant_impersonation(scenario.api, ns, "alice", [AGENT])
    vault_prefix = blocks(attacker, "database/creds/{namespace}-*", PREFIX)["vault"]
    vault_glued = blocks(attacker, GLUED, GLUED)["vault"]
    sm_prefix = blocks(attacker, PREFIX, PREFIX)["awsSecretsManager"]
    sm_glued = blocks(attacker, GLUED, GLUED)["awsSecretsManager"]
    # Each pattern alone passes the CRD; together <ns>_victim/db is <ns>'s (second) and
    # namespace victim's (first).
    first = f"{ns}_{{namespace}}/*"
    sm_pair = {**sm_prefix, "allowedSecrets": [first, "{namespace}_*/*"]}
    cases: list[tuple[str, str, dict[str, Any], dict[str, Any], str, bool]] = [
        (
            "vault-prefix",
            "vault",
            vault_prefix,
            {"role": "r", "dynamic": {"path": f"database/creds/{ns}-prod-admin"}},
            "database/creds/{namespace}-*",
            True,
        ),
        (
            "vault-glued",
            "vault",
            vault_glued,
            {"role": "r", "dynamic": {"path": f"prod-{ns}/creds/ro"}},
            GLUED,
            True,
        ),
        ("sm-prefix", "awsSecretsManager", sm_prefix, {"secretId": f"{ns}-prod-db"}, PREFIX, True),
        ("sm-glued", "awsSecretsManager", sm_glued, {"secretId": f"prod-{ns}/db"}, GLUED, True),
        (
            "sm-pair",
            "awsSecretsManager",
            sm_pair,
            {"secretId": f"{ns}_victim/db"},
            first,
            False,
        ),
    ]
    for case, kind, block, request, _, before_rule in cases:
        body = backend_body(scenario, f"{ns}-{case}", kind, block)
        if before_rule:
            store_as_before_the_rule(body)
        else:
            scenario.custom.create_cluster_custom_object(GROUP, VERSION, "credentialbackends", body)
        spec = {"backendRef": {"name": f"{ns}-{case}"}, kind: request}
        tenant_create(tenant, ns, "AgentCredential", spec, name=case)
        task = {"serviceAccountName": AGENT, "credentials": [{"name": case}]}
        tenant_create(tenant, ns, "AgentTask", task, name=case)

    for case, _, _, _, pattern, _ in cases:
        cond = wait_for(lambda c=case: backend_ready(scenario, f"{ns}-{c}"), 60, f"{case} Ready")
        assert (cond["status"], cond["reason"]) == ("False", Reason.INVALID_BACKEND), cond
        assert f"'{pattern}'" in cond["message"], cond
        cond = wait_for(lambda c=case: credential_ready(scenario, c), 60, f"{case} credential")
        assert (cond["status"], cond["reason"]) == ("False", Reason.INVALID_BACKEND), cond
        assert f"'{pattern}'" in cond["message"], cond
        waiting = scenario.wait_condition(case, Reason.INVALID_BACKEND)
        assert waiting["status"] == "False" and f"'{pattern}'" in waiting["message"], waiting
        assert scenario.status(case).get("phase") == "Pending", scenario.status(case)
        assert EventReason.ISSUE_FAILED in scenario.event_reasons(case)
    assert written(scenario, testbed_env) == []
    assert attacker.connections == 0, attacker.received
