"""Status building: entries carry lease metadata only, phases and conditions are right."""

from __future__ import annotations

import datetime

from agentcred.backends.base import Capabilities, Issued, Session
from agentcred.models.status import Phase
from agentcred.services import task_status

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
CAPS = Capabilities(renewable=True, revocable=True, static=False)


def issued(lease: str = "database/creds/ro/abc") -> Issued:
    return Issued(
        data={"username": "v-user-1", "password": "hunter2-secret"},
        lease_id=lease,
        issued_at=T0,
        expires_at=T0 + datetime.timedelta(minutes=15),
        renewable=True,
        session=Session(ref="acc-1", secret="s.token-secret"),
    )


def test_issued_entry_has_lease_metadata_and_no_values() -> None:
    entry = task_status.issued_entry(
        name="db",
        secret_name="t-db",
        backend="vault",
        issued=issued(),
        caps=CAPS,
        renew_at=T0 + datetime.timedelta(minutes=10),
        secret_version="42",
    )
    assert entry["leaseId"] == "database/creds/ro/abc"
    assert entry["expiresAt"] == "2026-01-01T00:15:00Z"
    assert entry["renewAt"] == "2026-01-01T00:10:00Z"
    assert entry["state"] == "Issued" and entry["reissues"] == 0
    text = repr(entry) + repr(issued())
    assert "hunter2-secret" not in text and "v-user-1" not in text and "s.token-secret" not in text


def test_reissue_counts_up_from_the_previous_entry() -> None:
    first = task_status.issued_entry(
        name="db",
        secret_name="s",
        backend="vault",
        issued=issued(),
        caps=CAPS,
        renew_at=None,
        secret_version="1",
    )
    second = task_status.issued_entry(
        name="db",
        secret_name="s",
        backend="vault",
        issued=issued("x/2"),
        caps=CAPS,
        renew_at=None,
        secret_version="2",
        previous=first,
    )
    assert second["reissues"] == 1
    entries = task_status.replace_entry([first], second)
    assert entries == [second]


def test_nearest_expiry_only_counts_issued_entries() -> None:
    a = {"name": "a", "state": "Issued", "expiresAt": "2026-01-01T00:15:00Z"}
    b = {"name": "b", "state": "Revoked", "expiresAt": "2026-01-01T00:05:00Z"}
    assert task_status.nearest_expiry([a, b]) == "2026-01-01T00:15:00Z"  # type: ignore[list-item]


def test_ended_status_keeps_an_existing_completion_time() -> None:
    old = {"completionTime": "2025-12-31T23:00:00Z", "conditions": []}
    status = task_status.ended(old, Phase.SUCCEEDED, "Completed", "done", 1, T0)
    assert status["completionTime"] == "2025-12-31T23:00:00Z"
    assert status["phase"] == "Succeeded"
    assert status["conditions"][0]["status"] == "False"


def test_revoked_marks_issued_entries_and_clears_schedules() -> None:
    entries = [{"name": "a", "state": "Issued", "renewAt": "x", "retireAt": "y"}]
    assert task_status.revoked(entries) == [{"name": "a", "state": "Revoked"}]  # type: ignore[arg-type]
