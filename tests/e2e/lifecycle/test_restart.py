"""An operator killed mid-task and restarted issues nothing twice and keeps renewing."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from support import postgres, vault
from support.kube import wait_for
from support.leaks import assert_no_leaks
from support.operator import operator_env, running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def test_sigkill_and_restart_neither_reissues_nor_loses_the_renewal_schedule(
    kube: client.ApiClient,
    namespace: str,
    crds: None,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    scene = Scenario(kube, namespace)
    account = scene.service_account("agent")
    db_role = vault.db_role(testbed_env, default_ttl="20s", max_ttl="1h")  # a short first lease
    rules = f'path "database/creds/{db_role}" {{ capabilities = ["read"] }}'
    role = vault.kubernetes_role(testbed_env, namespace, account, rules=rules)
    scene.credential(
        "db",
        ttl="60s",
        renewalPercent=50,
        vault={
            "role": role,
            "dynamic": {"path": f"database/creds/{db_role}"},
        },
    )
    env = operator_env(testbed_env)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with running_operator(env, logs[0], "--namespace", namespace) as first:
        scene.task("survivor", ["db"], serviceAccountName=account)
        entry = scene.wait_phase("survivor", "Active")["credentials"][0]
        data = scene.read_secret("survivor-db")
        assert data is not None
        first.kill()
    leases_before = vault.leases(testbed_env, f"database/creds/{db_role}/")

    with running_operator(env, logs[1], "--namespace", namespace) as second:
        renewed = wait_for(
            lambda: (e := scene.status("survivor")["credentials"][0]).get("renewals", 0) >= 1 and e,
            45,
            "a renewal by the restarted operator",
        )
        assert renewed["leaseId"] == entry["leaseId"]
        assert renewed.get("reissues", 0) == 0
        assert scene.read_secret("survivor-db") == data
        # No new lease (other tests' short leases may expire meanwhile, none may appear).
        leases_after = vault.leases(testbed_env, f"database/creds/{db_role}/")
        assert set(leases_after) <= set(leases_before)
        assert entry["leaseId"].rsplit("/", 1)[-1] in leases_after
        assert postgres.can_login(testbed_env, data["username"], data["password"])
        scene.patch_task("survivor", {"completed": True})
        scene.wait_phase("survivor", "Succeeded")
        wait_for(
            lambda: not postgres.can_login(testbed_env, data["username"], data["password"]),
            30,
            "revoked by the restarted operator",
        )
    assert_no_leaks(scene, [first, second])
