"""An operator killed mid-task and restarted issues nothing twice and keeps renewing."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import postgres, vault
from support.credentials import own_db_role, vault_database
from support.kube import wait_for
from support.leaks import assert_no_leaks
from support.operator import operator_env, running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def test_sigkill_and_restart_neither_reissues_nor_loses_the_renewal_schedule(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    db_role = own_db_role(testbed_env, default_ttl="20s", max_ttl="1h")  # a short 1st lease
    account = vault_database(scene, testbed_env, db_role=db_role, ttl="60s", renewalPercent=50)
    env = operator_env(testbed_env)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with running_operator(env, logs[0], "--namespace", scene.ns) as first:
        status, data = scene.issue("survivor", "db", serviceAccountName=account)
        entry = status["credentials"][0]
        first.kill()
    leases_before = vault.leases(testbed_env, f"{db_role.path}/")

    with running_operator(env, logs[1], "--namespace", scene.ns) as second:
        renewed = wait_for(
            lambda: (e := scene.status("survivor")["credentials"][0]).get("renewals", 0) >= 1 and e,
            45,
            "a renewal by the restarted operator",
        )
        assert renewed["leaseId"] == entry["leaseId"]
        assert renewed.get("reissues", 0) == 0
        assert scene.read_secret("survivor-db") == data
        # No new lease (other tests' short leases may expire meanwhile, none may appear).
        leases_after = vault.leases(testbed_env, f"{db_role.path}/")
        assert set(leases_after) <= set(leases_before)
        assert entry["leaseId"].rsplit("/", 1)[-1] in leases_after
        assert postgres.can_login(testbed_env, data["username"], data["password"])
        scene.complete("survivor")
        postgres.wait_refused(testbed_env, data, 30, "revoked by the restarted operator")
    assert_no_leaks(scene, [first, second])
