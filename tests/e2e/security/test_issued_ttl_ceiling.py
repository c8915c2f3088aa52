"""maxTTL is a ceiling on what is issued, not on what is asked (issue 18, class 3).

A tenant (only the README's RBAC) tries to get more than the platform's ``maxTTL`` or a
write where it was given a read: params outside ``allowedParams`` and a POST outside
``allowedWritePaths`` are refused before anything is sent (the backend's address is the
attacker's listener); an engine that hands out a one-year certificate under a one-hour
ceiling has it revoked at once in the real OpenBao, the task fails ``TTLExceeded`` and no
Secret is written; an answer without a lease is refused unless the backend allows it;
an STS session is cut to the task's deadline (moto honours ``DurationSeconds``).
"""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import hvac
import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_tenant_attacks import AGENT, assert_refused, tenant_create, tenant_starts, written

from agentcred.models.api_names import Reason
from support import vault
from support.kube import wait_for
from support.listener import Listener
from support.scenario import Scenario, default_block
from support.tenant import grant_impersonation

pytestmark = pytest.mark.e2e
YEAR = "8760h"


def attacker_vault(scene: Scenario, attacker: Listener) -> str:
    """A Vault backend at the attacker's host allowing a PKI write and one param only."""
    return scene.backend(
        "vault",
        {
            "address": attacker.http_url,
            "auth": {"kubernetes": {}},
            "allowedPaths": ["secret/data/{namespace}/*", "pki/issue/{namespace}_read"],
            "allowedWritePaths": ["pki/issue/{namespace}"],
            "allowedParams": ["common_name"],
        },
        suffix="-attacker",
        maxTTL="1h",
    )


@pytest.mark.parametrize(
    ("dynamic", "field"),
    [
        # a ttl param (or not_after, or anything else) the platform did not list
        (
            {"path": "pki/issue/NS", "params": {"common_name": "a.test", "ttl": YEAR}},
            "spec.vault.dynamic.params.ttl",
        ),
        # a write to a path the platform allowed for reading only
        ({"path": "pki/issue/NS_read", "method": "POST"}, "spec.vault.dynamic.method"),
    ],
    ids=["param", "post"],
)
def test_params_and_writes_beyond_the_allow_lists_are_refused_and_nothing_is_sent(
    scenario: Scenario,
    tenant: client.ApiClient,
    attacker: Listener,
    testbed_env: dict[str, str],
    dynamic: dict[str, Any],
    field: str,
) -> None:
    backend = attacker_vault(scenario, attacker)
    dynamic = {**dynamic, "path": dynamic["path"].replace("NS", scenario.ns)}
    credential = {"backendRef": {"name": backend}, "vault": {"role": "r", "dynamic": dynamic}}
    tenant_starts(scenario, tenant, credential, "longer")
    assert_refused(scenario, testbed_env, attacker, "longer", field)


def pki_mount(env: dict[str, str], *, ttl: str, generate_lease: bool) -> tuple[str, str]:
    """A PKI mount of the test's own, whose role ``agent`` issues ``ttl`` certificates by
    default (up to a year when asked); returns the mount and its CA's serial."""
    admin = vault.admin(env)
    mount = f"pki-{uuid.uuid4().hex[:8]}"
    admin.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    root = admin.write(f"{mount}/root/generate/internal", common_name="agents.test", ttl="87600h")
    pki_role(env, mount, ttl=ttl, generate_lease=generate_lease)
    return mount, serial(root["data"]["serial_number"])


def pki_role(env: dict[str, str], mount: str, *, ttl: str, generate_lease: bool) -> None:
    """(Re)write the mount's role ``agent`` (a write replaces every field of a role)."""
    vault.admin(env).write(
        f"{mount}/roles/agent",
        allowed_domains="agents.test",
        allow_subdomains=True,
        ttl=ttl,
        max_ttl=YEAR,
        generate_lease=generate_lease,
    )


def serial(text: str) -> str:
    """A serial in one form (OpenBao writes ``1a:2b`` or ``1a-2b`` depending on the API)."""
    return text.replace("-", ":").lower()


def pki_backend(scene: Scenario, env: dict[str, str], mount: str, **vault_extra: Any) -> str:
    """The testbed Vault under maxTTL 1h, allowing the PKI write with common_name and ttl."""
    block = {
        **default_block("vault", env),
        "allowedWritePaths": [f"{mount}/issue/agent"],
        "allowedParams": ["common_name", "ttl"],
        **vault_extra,
    }
    suffix = "-pki-unleased-ok" if vault_extra.get("allowUnleased") else "-pki"
    return scene.backend("vault", block, suffix=suffix, maxTTL="1h")


def agent_role(scene: Scenario, env: dict[str, str], mount: str) -> str:
    """The agent's ServiceAccount, which the tenant may impersonate, and its Vault role."""
    scene.service_account(AGENT)
    grant_impersonation(scene.api, scene.ns, "alice", [AGENT])
    rules = f'path "{mount}/issue/agent" {{ capabilities = ["update"] }}'
    return vault.kubernetes_role(env, scene.ns, AGENT, rules=rules)


def tenant_task(
    scene: Scenario,
    tenant: client.ApiClient,
    name: str,
    *,
    backend: str,
    role: str,
    path: str,
    params: dict[str, Any],
) -> None:
    """As the tenant: AgentCredential ``name`` for the dynamic ``path`` with ``params``,
    and task ``name`` using it as the agent."""
    dynamic = {"path": path, "params": params}
    credential = {"backendRef": {"name": backend}, "vault": {"role": role, "dynamic": dynamic}}
    tenant_create(tenant, scene.ns, "AgentCredential", credential, name=name)
    task = {"serviceAccountName": AGENT, "credentials": [{"name": name}]}
    tenant_create(tenant, scene.ns, "AgentTask", task, name=name)


def issued_serials(admin: hvac.Client, mount: str, ca: str) -> list[str]:
    """Serials of every certificate the mount issued, its own CA's left out."""
    return [serial(s) for s in admin.list(f"{mount}/certs")["data"]["keys"] if serial(s) != ca]


def revoked(admin: hvac.Client, mount: str, number: str) -> bool:
    cert = admin.read(f"{mount}/cert/{number}")
    return bool(cert and cert["data"].get("revocation_time"))


def test_an_over_long_certificate_is_revoked_at_the_backend_and_nothing_is_written(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    """maxTTL 1h; the PKI role issues one-year certificates unless asked for less. An
    allowed ``ttl: 8760h`` is cut to 1h before it is sent; without a ttl the engine's own
    year comes back, is revoked in OpenBao at once, and the task fails TTLExceeded."""
    mount, ca = pki_mount(testbed_env, ttl=YEAR, generate_lease=True)
    path = f"{mount}/issue/agent"
    grant = {
        "backend": pki_backend(scenario, testbed_env, mount),
        "role": agent_role(scenario, testbed_env, mount),
        "path": path,
    }
    tenant_task(
        scenario, tenant, "capped", params={"common_name": "c.agents.test", "ttl": YEAR}, **grant
    )
    status = scenario.wait_phase("capped", "Active")
    data = scenario.read_secret("capped-capped")
    assert data is not None
    ends = x509.load_pem_x509_certificate(data["certificate"].encode()).not_valid_after_utc
    assert ends - datetime.datetime.now(datetime.UTC) <= datetime.timedelta(hours=1)
    capped_lease = status["credentials"][0]["leaseId"]

    tenant_task(scenario, tenant, "engine", params={"common_name": "e.agents.test"}, **grant)
    status = scenario.wait_phase("engine", "Failed")
    assert status["reason"] == Reason.TTL_EXCEEDED, status
    assert re.search(r"(lease|certificate) valid for \d+h", status["message"]), status
    assert "maxTTL of 1h" in status["message"] and "revoked" in status["message"], status
    assert scenario.read_secret("engine-engine") is None
    assert not [name for name in written(scenario, testbed_env) if "engine" in name]
    admin = vault.admin(testbed_env)
    year = [s for s in issued_serials(admin, mount, ca) if s != serial(data["serial_number"])]
    assert len(year) == 1, year
    # revoked with its lease (through the credential's token), not left to live a year
    wait_for(lambda: revoked(admin, mount, year[0]), 30, "the year-long certificate revoked")
    wait_for(
        lambda: vault.leases(testbed_env, f"{path}/") == [capped_lease.rsplit("/", 1)[1]],
        30,
        "only the capped certificate's lease left",
    )
    assert not revoked(admin, mount, serial(data["serial_number"]))


def test_an_unleased_answer_is_refused_unless_the_backend_allows_it(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    """A PKI role without generate_lease answers with no lease: nothing could revoke the
    certificate. Refused (and dropped) by default; served where the platform opted in,
    still held to maxTTL."""
    mount, _ = pki_mount(testbed_env, ttl="30m", generate_lease=False)
    path = f"{mount}/issue/agent"
    role = agent_role(scenario, testbed_env, mount)
    strict = pki_backend(scenario, testbed_env, mount)
    lenient = pki_backend(scenario, testbed_env, mount, allowUnleased=True)
    params = {"common_name": "s.agents.test"}
    tenant_task(scenario, tenant, "strict", backend=strict, role=role, path=path, params=params)
    status = scenario.wait_phase("strict", "Failed")
    assert status["reason"] == Reason.UNLEASED, status
    assert "allowUnleased" in status["message"], status
    assert scenario.read_secret("strict-strict") is None

    tenant_task(scenario, tenant, "opted", backend=lenient, role=role, path=path, params=params)
    scenario.wait_phase("opted", "Active")
    data = scenario.read_secret("opted-opted")
    assert data is not None and data["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    entry = scenario.status("opted")["credentials"][0]
    assert entry["expiresAt"], entry  # the certificate's own end: re-issued before it


def test_an_sts_session_ends_by_the_tasks_deadline(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    """``durationSeconds: 3600`` on a task with 20 minutes to live: STS is asked for the
    time left, not the hour (moto's Expiration honours DurationSeconds)."""
    backend = scenario.backend("awsSts", maxTTL="2h")
    sts = {"roleArn": "arn:aws:iam::123456789012:role/agent", "durationSeconds": 3600}
    scenario.credential("sts", backend=backend, awsSts=sts)
    scenario.service_account(AGENT)
    started = datetime.datetime.now(datetime.UTC)
    _, data = scenario.issue(
        "deadline", "sts", serviceAccountName=AGENT, activeDeadlineSeconds=1200
    )
    expiration = datetime.datetime.fromisoformat(
        data["AWS_CREDENTIAL_EXPIRATION"].replace("Z", "+00:00")
    )
    assert expiration - started <= datetime.timedelta(seconds=1200 + 30), expiration
    assert expiration - started >= datetime.timedelta(seconds=1200 - 120), expiration


def test_the_schema_refuses_an_sts_backend_whose_max_ttl_cannot_hold_a_session(
    scenario: Scenario,
) -> None:
    """STS issues nothing shorter than 15 minutes: under a 5-minute ceiling every session
    would fail TTLExceeded after it was issued (and could not be revoked), so the
    platform is told when it writes the backend."""
    with pytest.raises(ApiException) as refused:
        scenario.backend("awsSts", maxTTL="5m")
    assert refused.value.status == 422
    assert "maxTTL must be at least 10m on an awsSts backend" in refused.value.body
    assert scenario.backend("awsSts", maxTTL="10m")


def test_a_reissue_is_held_to_the_ceiling_too(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    """Issued within the ceiling; then the engine's role is changed to a year and the
    Secret deleted: the restore's fresh certificate is revoked, the task fails TTLExceeded
    and every credential it held (the first one too) is revoked, every Secret deleted."""
    mount, ca = pki_mount(testbed_env, ttl="30m", generate_lease=True)
    path = f"{mount}/issue/agent"
    backend = pki_backend(scenario, testbed_env, mount)
    role = agent_role(scenario, testbed_env, mount)
    params = {"common_name": "r.agents.test"}
    tenant_task(scenario, tenant, "again", backend=backend, role=role, path=path, params=params)
    scenario.wait_phase("again", "Active")
    admin = vault.admin(testbed_env)
    pki_role(testbed_env, mount, ttl=YEAR, generate_lease=True)  # now it hands out a year
    scenario.core.delete_namespaced_secret("again-again", scenario.ns)
    status = scenario.wait_phase("again", "Failed")
    assert status["reason"] == Reason.TTL_EXCEEDED, status
    assert written(scenario, testbed_env) == []
    issued = issued_serials(admin, mount, ca)
    assert len(issued) == 2, issued
    for number in issued:
        wait_for(lambda n=number: revoked(admin, mount, n), 30, f"certificate {number} revoked")
