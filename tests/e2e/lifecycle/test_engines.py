"""Other Vault engines through the operator: KV v2 (static, pinned or latest) and a
dynamic engine issued by POST with params (PKI)."""

from __future__ import annotations

import uuid

import pytest

from support import vault
from support.credentials import kv_rules, vault_kv
from support.kube import wait_for
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def agent_role(scene: Scenario, env: dict[str, str], rules: str) -> str:
    account = scene.service_account("agent")
    return vault.kubernetes_role(env, scene.ns, account, rules=rules)


def test_kv_secret_keys_become_secret_keys_and_a_pinned_version_stays(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    path = f"agents/{scenario.ns}/llm"
    admin = vault.admin(testbed_env)
    admin.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"api_key": "key-one-0001", "org": "acme"}
    )
    admin.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"api_key": "key-two-0002", "org": "acme"}
    )
    role = agent_role(scenario, testbed_env, kv_rules(path))
    scenario.credential(
        "latest",
        vault={"role": role, "kv": {"path": path}},
        template={"HEADER": "Bearer {{ api_key }}"},
    )
    scenario.credential("pinned", vault={"role": role, "kv": {"path": path, "version": 1}})
    scenario.task("reader", ["latest", "pinned"], serviceAccountName="agent")
    status = scenario.wait_phase("reader", "Active")
    assert scenario.read_secret("reader-latest") == {
        "api_key": "key-two-0002",
        "org": "acme",
        "HEADER": "Bearer key-two-0002",
    }
    assert scenario.read_secret("reader-pinned") == {"api_key": "key-one-0001", "org": "acme"}
    entries = {e["name"]: e for e in status["credentials"]}
    assert entries["latest"]["renewable"] is False and entries["latest"]["revocable"] is False
    assert "2" in entries["latest"]["leaseId"]
    # Static secrets keep no Vault session once read.
    assert (
        scenario.core.list_namespaced_secret(
            testbed_env["AGENTCRED_NAMESPACE"],
            label_selector=f"agentcred.io/task-namespace={scenario.ns}",
        ).items
        == []
    )


def test_kv_rotation_reaches_the_secret_within_the_refresh_interval(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    path = f"agents/{scenario.ns}/rotating"
    before = {"token": "before-rotation"}
    account = vault_kv(scenario, testbed_env, "rot", path, before, refreshInterval="10s")
    assert scenario.issue("rotator", "rot", serviceAccountName=account)[1] == before
    vault.admin(testbed_env).secrets.kv.v2.create_or_update_secret(
        path=path, secret={"token": "after-rotation"}
    )
    wait_for(
        lambda: scenario.read_secret("rotator-rot") == {"token": "after-rotation"},
        25,
        "rotated value propagated",
    )


def test_pki_certificate_is_issued_by_post_with_params_and_revoked_at_the_end(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    admin = vault.admin(testbed_env)
    mount = f"pki-{uuid.uuid4().hex[:6]}"
    admin.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "1h"})
    admin.write(f"{mount}/root/generate/internal", common_name="agents.test", ttl="1h")
    admin.write(
        f"{mount}/roles/agent",
        allowed_domains="agents.test",
        allow_subdomains=True,
        max_ttl="30m",
        generate_lease=True,
    )
    role = agent_role(
        scenario, testbed_env, f'path "{mount}/issue/agent" {{ capabilities = ["update"] }}'
    )
    scenario.credential(
        "cert",
        ttl="10m",
        vault={
            "role": role,
            "dynamic": {
                "path": f"{mount}/issue/agent",
                "method": "POST",
                "params": {"common_name": "claim.agents.test", "ttl": "10m"},
            },
        },
    )
    scenario.task("tls", ["cert"], serviceAccountName="agent")
    scenario.wait_phase("tls", "Active")
    data = scenario.read_secret("tls-cert")
    assert data is not None
    assert data["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "private_key" in data and data["serial_number"]
    scenario.patch_task("tls", {"completed": True})
    scenario.wait_phase("tls", "Succeeded")

    def revoked() -> bool:
        cert = admin.read(f"{mount}/cert/{data['serial_number']}")
        return bool(cert and cert["data"].get("revocation_time"))

    wait_for(revoked, 30, "certificate revoked with its lease")
