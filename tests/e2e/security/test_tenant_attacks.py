"""A hostile tenant, holding only the RBAC the README grants, tries to steal tokens or
other tenants' secrets. Each attack is refused with a reason, writes nothing, and sends
nothing: the attacker's host (a loopback listener) records zero connections."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import MANAGED_SELECTOR, EventReason, Label, Reason
from support import postgres, vault
from support.credentials import DYNAMIC, vault_database
from support.kube import GROUP, VERSION, wait_for
from support.listener import Listener
from support.operator import OperatorProcess
from support.scenario import Scenario, default_block
from support.tenant import grant_impersonation

pytestmark = pytest.mark.e2e
AGENT = "agent"


def tenant_create(
    api: client.ApiClient, ns: str, kind: str, spec: dict[str, Any], **kw: Any
) -> Any:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": kw.pop("name", "x")},
        "spec": spec,
    }
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, kind.lower() + "s", body, **kw
    )


def ready(scene: Scenario, name: str) -> dict[str, str] | None:
    obj = scene.custom.get_namespaced_custom_object(
        GROUP, VERSION, scene.ns, "agentcredentials", name
    )
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}.get("Ready")


def written(scene: Scenario, env: dict[str, str]) -> list[str]:
    """Everything the operator wrote for this namespace: generated and lease-record Secrets."""
    generated = scene.core.list_namespaced_secret(scene.ns, label_selector=MANAGED_SELECTOR).items
    records = scene.core.list_namespaced_secret(
        env["AGENTCRED_NAMESPACE"], label_selector=f"agentcred.io/task-namespace={scene.ns}"
    ).items
    return [s.metadata.name for s in [*generated, *records]]


def assert_refused(
    scene: Scenario, env: dict[str, str], attacker: Listener, task: str, field: str
) -> None:
    cond = wait_for(lambda: ready(scene, "x"), 30, "Ready on the credential")
    assert (cond["status"], cond["reason"]) == ("False", Reason.NOT_ALLOWED), cond
    assert field in cond["message"], cond
    status = scene.wait_phase(task, "Failed")
    assert status["reason"] == Reason.NOT_ALLOWED and field in status["message"], status
    assert EventReason.ISSUE_FAILED in scene.event_reasons(task)
    assert written(scene, env) == []
    assert attacker.connections == 0, attacker.received


def tenant_starts(
    scene: Scenario, tenant: client.ApiClient, credential: dict[str, Any], task: str = "t"
) -> None:
    """As the tenant: AgentCredential ``x`` with ``credential``, then a task using it as
    the agent (whom the tenant may impersonate)."""
    scene.service_account(AGENT)
    grant_impersonation(scene.api, scene.ns, "alice", [AGENT])
    tenant_create(tenant, scene.ns, "AgentCredential", credential)
    tenant_create(
        tenant,
        scene.ns,
        "AgentTask",
        {"serviceAccountName": AGENT, "credentials": [{"name": "x"}]},
        name=task,
    )


def attacker_backend(scene: Scenario, kind: str, attacker: Listener, **spec: Any) -> str:
    """A platform backend of ``kind`` whose address is the attacker's host, allowing only
    ``{namespace}``-scoped names: any call it made would show on the listener."""
    blocks: dict[str, dict[str, Any]] = {
        "vault": {
            "address": attacker.http_url,
            "auth": {"kubernetes": {}},
            "allowedPaths": ["database/creds/{namespace}_*", "secret/data/{namespace}/*"],
        },
        "awsSecretsManager": {
            "region": "us-east-1",
            "endpoint": attacker.http_url,
            "allowedSecrets": ["{namespace}/*"],
        },
        "awsSts": {
            "region": "us-east-1",
            "endpoint": attacker.http_url,
            "allowedRoleArns": ["arn:aws:iam::123456789012:role/{namespace}_*"],
            "webIdentity": {"audience": "sts.amazonaws.com"},
        },
        "gcpSecretManager": {
            "project": "p",
            "endpoint": attacker.http_url,
            "transport": "rest",
            "allowedSecrets": ["projects/p/secrets/{namespace}_*"],
        },
        "azureKeyVault": {"vaultUrl": attacker.https_url, "allowedSecrets": ["{namespace}"]},
    }
    return scene.backend(kind, blocks[kind], suffix="-attacker", **spec)


OUTSIDE: list[tuple[str, dict[str, Any], str]] = [
    ("vault", {"role": "r", "dynamic": {"path": "database/creds/team-b_admin"}}, "spec.vault"),
    ("vault", {"role": "r", "kv": {"path": "team-b/llm"}}, "spec.vault"),
    ("awsSecretsManager", {"secretId": "team-b/prod-db"}, "spec.awsSecretsManager.secretId"),
    ("awsSts", {"roleArn": "arn:aws:iam::123456789012:role/admin"}, "spec.awsSts.roleArn"),
    ("gcpSecretManager", {"secret": "team-b_llm"}, "spec.gcpSecretManager.secret"),
    (
        "gcpSecretManager",
        {"secret": "projects/other/secrets/llm"},
        "spec.gcpSecretManager.secret",
    ),
    ("azureKeyVault", {"name": "team-b"}, "spec.azureKeyVault.name"),
]


@pytest.mark.parametrize(
    ("kind", "block", "field"), OUTSIDE, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(OUTSIDE)]
)
def test_a_secret_outside_the_allow_list_is_refused_and_nothing_is_sent(
    scenario: Scenario,
    tenant: client.ApiClient,
    attacker: Listener,
    testbed_env: dict[str, str],
    kind: str,
    block: dict[str, Any],
    field: str,
) -> None:
    backend = attacker_backend(scenario, kind, attacker)
    tenant_starts(scenario, tenant, {"backendRef": {"name": backend}, kind: block}, "steal")
    assert_refused(scenario, testbed_env, attacker, "steal", field)


def test_a_backend_that_does_not_select_the_namespace_is_refused(
    scenario: Scenario, tenant: client.ApiClient, attacker: Listener, testbed_env: dict[str, str]
) -> None:
    backend = attacker_backend(
        scenario,
        "vault",
        attacker,
        namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "team-b"}},
    )
    path = {"dynamic": {"path": f"database/creds/{scenario.ns}_ro"}}  # inside the allow-list
    tenant_starts(
        scenario, tenant, {"backendRef": {"name": backend}, "vault": {"role": "r", **path}}
    )
    assert_refused(scenario, testbed_env, attacker, "t", "spec.backendRef.name")


def test_a_credential_limited_to_other_service_accounts_is_refused(
    scenario: Scenario, tenant: client.ApiClient, attacker: Listener, testbed_env: dict[str, str]
) -> None:
    scenario.service_account(AGENT)
    grant_impersonation(scenario.api, scenario.ns, "alice", [AGENT])
    backend = attacker_backend(scenario, "vault", attacker)
    spec = {
        "backendRef": {"name": backend},
        "serviceAccounts": ["research-agent"],
        "vault": {"role": "r", "dynamic": {"path": f"database/creds/{scenario.ns}_ro"}},
    }
    tenant_create(tenant, scenario.ns, "AgentCredential", spec)
    # The credential itself is allowed (for research-agent), so its Ready check may probe
    # the platform's address: an unauthenticated health check, never a token.
    wait_for(lambda: ready(scenario, "x"), 30, "Ready on the credential")
    probes = attacker.connections
    assert all(b"GET /v1/sys/health" in r and b"X-Vault-Token" not in r for r in attacker.received)
    tenant_create(
        tenant,
        scenario.ns,
        "AgentTask",
        {"serviceAccountName": AGENT, "credentials": [{"name": "x"}]},
        name="t",
    )
    status = scenario.wait_phase("t", "Failed")
    assert status["reason"] == Reason.NOT_ALLOWED and "spec.serviceAccounts" in status["message"]
    assert written(scenario, testbed_env) == []
    assert attacker.connections == probes, attacker.received


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"role": "r", "address": "ADDR", "dynamic": {"path": "x/y"}}, "spec.vault.address"),
        (
            {
                "role": "r",
                "auth": {"kubernetes": {"audience": "https://kubernetes.default.svc"}},
                "dynamic": {"path": "x/y"},
            },
            "spec.vault.auth",
        ),
    ],
    ids=["address", "audience"],
)
def test_a_tenant_cannot_write_a_destination_or_audience(
    scenario: Scenario,
    tenant: client.ApiClient,
    attacker: Listener,
    block: dict[str, Any],
    field: str,
) -> None:
    if "address" in block:
        block = {**block, "address": attacker.http_url}
    spec = {"backendRef": {"name": "anything"}, "vault": block}
    with pytest.raises(ApiException) as info:  # kubectl's default: strict field validation
        tenant_create(tenant, scenario.ns, "AgentCredential", spec, field_validation="Strict")
    assert info.value.status in (400, 422) and "unknown field" in info.value.body
    assert field in info.value.body
    # A client that ignores unknown fields gets them pruned: nothing to send a token to.
    created = tenant_create(tenant, scenario.ns, "AgentCredential", spec, field_validation="Ignore")
    assert "address" not in created["spec"]["vault"] and "auth" not in created["spec"]["vault"]
    assert attacker.connections == 0


def test_a_tenant_cannot_create_or_edit_a_credential_backend(
    scenario: Scenario, tenant: client.ApiClient, attacker: Listener
) -> None:
    existing = scenario.backend("vault")
    api = client.CustomObjectsApi(tenant)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CredentialBackend",
        "metadata": {"name": f"{scenario.ns}-mine"},
        "spec": {
            "namespaceSelector": {},
            "allowInsecureHTTP": True,
            "vault": {
                "address": attacker.http_url,
                "auth": {"kubernetes": {}},
                "allowedPaths": ["*"],
            },
        },
    }
    with pytest.raises(ApiException) as created:
        api.create_cluster_custom_object(GROUP, VERSION, "credentialbackends", body)
    assert created.value.status == 403
    patch = {"spec": {"vault": {"address": attacker.http_url}}}
    with pytest.raises(ApiException) as edited:
        api.patch_cluster_custom_object(GROUP, VERSION, "credentialbackends", existing, patch)
    assert edited.value.status == 403


def test_a_task_as_a_service_account_the_tenant_may_not_impersonate_is_denied(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    scenario.service_account(AGENT)
    scenario.service_account("ops-admin")
    grant_impersonation(scenario.api, scenario.ns, "alice", [AGENT])
    for account in ("ops-admin", None):  # None: the namespace's default ServiceAccount
        spec: dict[str, Any] = {"credentials": [{"name": "db"}]}
        if account:
            spec["serviceAccountName"] = account
        with pytest.raises(ApiException) as info:
            tenant_create(tenant, scenario.ns, "AgentTask", spec, name="as-admin")
        assert info.value.status in (403, 422), info.value.body
        assert "may not impersonate" in info.value.body
        assert f"{scenario.ns}/{account or 'default'}" in info.value.body
        assert scenario.get_task("as-admin") is None
    # The ServiceAccount the tenant may act as is admitted.
    spec = {"serviceAccountName": AGENT, "credentials": [{"name": "db"}]}
    assert tenant_create(tenant, scenario.ns, "AgentTask", spec, name="as-agent")


def test_session_records_are_out_of_the_tenants_reach(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    scenario.service_account(AGENT)
    grant_impersonation(scenario.api, scenario.ns, "alice", [AGENT])
    role = vault.kubernetes_role(testbed_env, scenario.ns, AGENT)
    backend = scenario.backend("vault")
    spec = {
        "backendRef": {"name": backend},
        "vault": {"role": role, "dynamic": DYNAMIC},
    }
    tenant_create(tenant, scenario.ns, "AgentCredential", spec, name="db")
    tenant_create(
        tenant,
        scenario.ns,
        "AgentTask",
        {"serviceAccountName": AGENT, "credentials": [{"name": "db"}]},
        name="t",
    )
    scenario.wait_phase("t", "Active")
    uid = scenario.get_task("t")["metadata"]["uid"]
    own = testbed_env["AGENTCRED_NAMESPACE"]
    record = scenario.core.read_namespaced_secret(f"agentcred-session-{uid}", own)
    assert record.metadata.labels[Label.TASK_NAMESPACE] == scenario.ns
    assert (
        scenario.core.list_namespaced_secret(
            scenario.ns, label_selector="agentcred.io/session=true"
        ).items
        == []
    )
    core = client.CoreV1Api(tenant)
    for call in (
        lambda: core.read_namespaced_secret(f"agentcred-session-{uid}", own),
        lambda: core.list_namespaced_secret(own),
    ):
        with pytest.raises(ApiException) as info:
            call()
        assert info.value.status == 403


def test_a_forged_session_secret_in_a_tenant_namespace_is_ignored(
    scenario: Scenario, operator: OperatorProcess, attacker: Listener, testbed_env: dict[str, str]
) -> None:
    """A tenant with ``edit`` in its namespace can write any Secret there; one dressed as a
    lease record pointing at the attacker must never be read, let alone revoked."""
    record = {
        "credential": "db",
        "backend": "vault",
        "spec": {
            "allowInsecureHTTP": True,
            "vault": {
                "address": attacker.http_url,
                "auth": {"kubernetes": {"role": "r"}},
                "dynamic": {"path": "a/b"},
            },
        },
        "leaseId": "",
        "ref": "",
        "secret": "forged-token-000",
    }
    labels = {
        Label.MANAGED_BY: "agentcred",
        Label.SESSION: "true",
        Label.TASK: "ghost",
        Label.TASK_UID: "00000000-0000-0000-0000-000000000000",
        Label.TASK_NAMESPACE: scenario.ns,
    }
    scenario.core.create_namespaced_secret(
        scenario.ns,
        {
            "metadata": {"name": "agentcred-session-forged", "labels": labels},
            "stringData": {"db": json.dumps(record)},
        },
    )
    before = sum("sweep done" in line for line in operator.log_lines())
    wait_for(
        lambda: sum("sweep done" in line for line in operator.log_lines()) >= before + 2,
        30,
        "two orphan sweeps after the forgery",
    )
    assert attacker.connections == 0, attacker.received
    assert scenario.core.read_namespaced_secret("agentcred-session-forged", scenario.ns)


def test_renewal_and_revocation_use_the_address_a_lease_was_issued_under(
    scenario: Scenario, attacker: Listener, testbed_env: dict[str, str]
) -> None:
    """Even the platform re-pointing a backend never sends a live lease's token elsewhere:
    renewal and revocation use the connection recorded at issue."""
    backend = scenario.backend("vault")
    # Renewed at 30 % of the 60 s ttl (12-18 s after the issue, jitter included): well
    # after the re-pointing below, without the default's ~40 s wait.
    vault_database(
        scenario, testbed_env, account=AGENT, backend=backend, ttl="60s", renewalPercent=30
    )
    _, data = scenario.issue("t", "db", serviceAccountName=AGENT)
    assert postgres.can_login(testbed_env, data["username"], data["password"])
    moved = {**default_block("vault", testbed_env), "address": attacker.http_url}
    scenario.custom.patch_cluster_custom_object(
        GROUP, VERSION, "credentialbackends", backend, {"spec": {"vault": moved}}
    )
    wait_for(
        lambda: (scenario.status("t").get("credentials") or [{}])[0].get("renewals", 0) >= 1,
        45,
        "a renewal after the backend was re-pointed",
    )
    scenario.complete("t")
    postgres.wait_refused(testbed_env, data, 30, "the lease revoked at the Vault it came from")
    # The re-pointed backend's Ready check may probe the new address (unauthenticated
    # health checks); no token, renewal or revocation ever goes there.
    assert all(
        b"GET /v1/sys/health" in r and b"X-Vault-Token" not in r for r in attacker.received
    ), attacker.received
