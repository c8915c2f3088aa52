"""Leases are renewed while the task runs; a capped lease is re-issued with an overlap."""

from __future__ import annotations

import pytest

from agentcred.models.api_names import Annotation, EventReason
from support import postgres
from support.credentials import own_db_role, vault_database
from support.kube import wait_for
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def test_short_lease_is_renewed_in_place(scenario: Scenario, testbed_env: dict[str, str]) -> None:
    # The ttl floor is 60 s; renewed at 15 % of it (9 s, up to 10 % earlier). One renewal
    # against the real Vault is enough here: that each renewal schedules the next is
    # tested on the fake clock (tests/unit/core/test_core_renew_again.py).
    db_role = own_db_role(testbed_env, default_ttl="10s", max_ttl="1h")
    account = vault_database(scenario, testbed_env, db_role=db_role, ttl="60s", renewalPercent=15)
    status, data = scenario.issue("renewing", "db", serviceAccountName=account)
    first = status["credentials"][0]

    renewed = wait_for(
        lambda: (e := scenario.status("renewing")["credentials"][0]).get("renewals", 0) >= 1 and e,
        30,
        "a renewal",
    )
    assert renewed["leaseId"] == first["leaseId"], "renewal must not re-issue"
    assert renewed["expiresAt"] > first["expiresAt"]
    assert renewed.get("reissues", 0) == 0
    assert scenario.read_secret("renewing-db") == data
    assert postgres.can_login(testbed_env, data["username"], data["password"])
    assert EventReason.RENEWED in scenario.event_reasons("renewing")

    def annotation_matches_status() -> bool:
        expires = scenario.status("renewing")["credentials"][0]["expiresAt"]
        secret = scenario.secret_object("renewing-db")
        return secret.metadata.annotations[Annotation.EXPIRES_AT] == expires

    wait_for(annotation_matches_status, 20, "expiry annotation follows renewals")
    assert EventReason.RESTORED not in scenario.event_reasons("renewing")


def test_capped_lease_is_reissued_and_the_old_role_dropped_after_the_overlap(
    scenario: Scenario, testbed_env: dict[str, str]
) -> None:
    db_role = own_db_role(testbed_env, default_ttl="12s", max_ttl="12s")
    # ttl: the floor; the database role caps every lease at 12 s
    account = vault_database(scenario, testbed_env, db_role=db_role, ttl="60s", renewalPercent=50)
    status, first = scenario.issue("capped", "db", serviceAccountName=account)
    first_entry = status["credentials"][0]

    entry = wait_for(
        lambda: (e := scenario.status("capped")["credentials"][0]).get("reissues", 0) >= 1 and e,
        40,
        "a re-issue",
    )
    assert entry["leaseId"] != first_entry["leaseId"]
    second = wait_for(
        lambda: (
            (d := scenario.read_secret("capped-db")) and d["username"] != first["username"] and d
        ),
        10,
        "Secret switched",
    )
    assert postgres.can_login(testbed_env, second["username"], second["password"])
    wait_for(
        lambda: not postgres.role_exists(testbed_env, first["username"]),
        30,
        "old role dropped after the overlap",
    )
    assert EventReason.REISSUED in scenario.event_reasons("capped")
