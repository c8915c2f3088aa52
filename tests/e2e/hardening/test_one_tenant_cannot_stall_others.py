"""One tenant's bad object, slow backend or forged Secret never stalls, floods or confuses
the operator for everyone else."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
from kubernetes.client.exceptions import NotFoundException

from agentcred.models.api_names import API_VERSION, Annotation, EventReason, Label
from support import postgres, vault
from support.credentials import DYNAMIC, own_db_role, vault_database
from support.kube import wait_for
from support.leaks import assert_no_leaks
from support.listener import listening
from support.operator import OperatorProcess, operator_env, running_operator
from support.orphans import orphan_a_task
from support.scenario import Scenario, default_block

pytestmark = pytest.mark.e2e


def test_a_poison_session_record_does_not_stop_the_sweep(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    account = vault_database(scene, testbed_env)
    own = testbed_env["AGENTCRED_NAMESPACE"]
    env = operator_env(testbed_env)
    data, _, first = orphan_a_task(scene, testbed_env, tmp_path / "first.log", account)
    # A record that is not JSON, listed before the real orphan ("0..." sorts first).
    scene.core.create_namespaced_secret(
        own,
        {
            "metadata": {
                "name": f"agentcred-session-0-poison-{scene.ns}"[:253],
                "labels": {
                    Label.SESSION: "true",
                    Label.TASK_NAMESPACE: scene.ns,
                    "agentcred.io/test-namespace": scene.ns,
                },
                "annotations": {Annotation.TASK_NAME: "poison"},
            },
            "stringData": {"db": "{not json"},
        },
    )
    with running_operator(env, tmp_path / "second.log", "--namespace", scene.ns) as second:
        postgres.wait_refused(
            testbed_env, data, 30, "the orphan revoked by the same sweep that met the poison record"
        )
        assert any("skipped" in line for line in second.log_lines())
    assert_no_leaks(scene, [first, second])


def test_a_tarpit_backend_does_not_starve_a_healthy_one(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Four threads for Vault in all, at most two per backend address: six tasks stuck on a
    backend that never answers leave the healthy backend its share."""
    account = scene.service_account("agent")
    short = own_db_role(testbed_env, default_ttl="10s", max_ttl="1h")
    role = vault.kubernetes_role(testbed_env, scene.ns, account, rules=short.rules)
    env = {
        **operator_env(testbed_env),
        "AGENTCRED_BACKEND_CONCURRENCY": "4",
        "AGENTCRED_BACKEND_TARGET_CONCURRENCY": "2",
        "AGENTCRED_BACKEND_TIMEOUT": "120s",
    }
    # The tarpit closes first: the calls it holds then fail at once, and the operator's
    # exit does not wait out their 120 s read timeout in its backend threads.
    with (
        running_operator(env, tmp_path / "op.log", "--namespace", scene.ns) as op,
        listening(tarpit=True) as tarpit,
    ):
        stuck = scene.backend(
            "vault",
            {**default_block("vault", testbed_env), "address": tarpit.http_url},
            suffix="-tarpit",
        )
        scene.credential("slow", backend=stuck, vault={"role": role, "dynamic": DYNAMIC})
        for i in range(6):
            scene.task(f"stuck-{i}", ["slow"], serviceAccountName=account)
        wait_for(lambda: tarpit.connections >= 2, 30, "the tarpit holding its calls")
        scene.credential(
            "db",
            vault={"role": role, "dynamic": {"path": short.path}},
            ttl="60s",
            renewalPercent=50,
        )
        started = time.monotonic()
        scene.task("healthy", ["db"], serviceAccountName=account)
        scene.wait_phase("healthy", "Active", timeout=30)
        wait_for(
            lambda: scene.status("healthy")["credentials"][0].get("renewals", 0) >= 1,
            30,
            "a renewal on the healthy backend while the tarpit holds its share",
        )
        print(f"healthy task active and renewed in {time.monotonic() - started:.1f}s")
        assert tarpit.connections <= 2 + 1, "more calls reached the tarpit than its share"
        assert all(scene.status(f"stuck-{i}").get("phase") != "Active" for i in range(6))
    assert_no_leaks(scene, [op])


def test_a_forged_secret_claiming_a_task_triggers_nothing(
    scenario: Scenario, operator: OperatorProcess, testbed_env: dict[str, str]
) -> None:
    account = vault_database(scenario, testbed_env)
    task = scenario.task("victim", ["db"], serviceAccountName=account)
    lease = scenario.wait_phase("victim", "Active")["credentials"][0]["leaseId"]
    for name, uid in (("victim-db-copy", task["metadata"]["uid"]), ("victim-db-2", "not-the-uid")):
        scenario.core.create_namespaced_secret(
            scenario.ns,
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        Label.MANAGED_BY: "agentcred",
                        Label.CREDENTIAL: "db",
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": API_VERSION,
                            "kind": "AgentTask",
                            "name": "victim",
                            "uid": uid,
                            "controller": True,
                        }
                    ],
                },
                "stringData": {"x": "y"},
            },
        )
        # The garbage collector may delete the one whose owner uid matches nothing first.
        with contextlib.suppress(NotFoundException):
            scenario.core.delete_namespaced_secret(name, scenario.ns)
    wait_for(
        lambda: (
            sum("claims to be generated for victim" in line for line in operator.log_lines()) >= 2
        ),
        30,
        "the operator to look at both forgeries and ignore them",
    )
    assert scenario.status("victim")["credentials"][0]["leaseId"] == lease
    assert scenario.status("victim")["credentials"][0].get("reissues", 0) == 0
    assert EventReason.RESTORED not in scenario.event_reasons("victim")


def test_a_long_task_name_and_a_password_full_of_url_syntax_still_work(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    admin = vault.admin(testbed_env)
    policy = f"urlish-{scenario.ns}"[:60]
    rules = [
        "length = 24",
        'rule "charset" { charset = "abcdefghijklmnopqrstuvwxyz" min-chars = 1 }',
    ]
    rules += [f'rule "charset" {{ charset = "{c}" min-chars = 1 }}' for c in "@/:?#"]
    admin.write(f"sys/policies/password/{policy}", policy="\n".join(rules))
    connection = f"pg-{scenario.ns}"[:60]
    pg = testbed_env
    admin.write(
        f"database/config/{connection}",
        plugin_name="postgresql-database-plugin",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{pg['PGHOST']}:{pg['PGPORT']}/{pg['PGDATABASE']}?sslmode=disable",
        username=pg["PGUSER"],
        password=pg["PGPASSWORD"],
        password_authentication="scram-sha-256",
        password_policy=policy,
        allowed_roles=["*"],
    )
    db_role = own_db_role(testbed_env, default_ttl="10m", max_ttl="1h", connection=connection)
    where = f"{pg['PGHOST']}:{pg['PGPORT']}/{pg['PGDATABASE']}"
    url = "postgresql://{{ username | urlquery }}:{{ password | urlquery }}@" + where
    account = vault_database(scenario, testbed_env, db_role=db_role, template={"DATABASE_URL": url})
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    scenario.task(name, ["db"], serviceAccountName=account)
    entry = scenario.wait_phase(name, "Active")["credentials"][0]
    secret_name = entry["secretName"]
    assert len(secret_name) <= 253 and secret_name.endswith("-db")
    data = scenario.read_secret(secret_name)
    assert data is not None and all(c in data["password"] for c in "@/:?#")
    assert postgres.can_login_url(data["DATABASE_URL"])
    labels = scenario.secret_object(secret_name).metadata.labels
    assert len(labels[Label.TASK]) <= 63
    scenario.complete(name)
    wait_for(lambda: not postgres.can_login_url(data["DATABASE_URL"]), 30, "revoked")
    admin.delete(f"database/config/{connection}")
    assert json.dumps(scenario.status(name)).count(data["password"]) == 0
