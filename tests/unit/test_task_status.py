"""Status building: entries carry lease metadata only, phases and conditions are right."""

from __future__ import annotations

import datetime

from agentcred.backends.base import Capabilities, Issued, Session
from agentcred.models.status import CredentialEntry, EntryState, Phase
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
    assert entry.lease_id == "database/creds/ro/abc"
    assert entry.state is EntryState.ISSUED and entry.reissues == 0
    assert entry.to_json() == {
        "name": "db",
        "secretName": "t-db",
        "backend": "vault",
        "leaseId": "database/creds/ro/abc",
        "renewable": True,
        "revocable": True,
        "issuedAt": "2026-01-01T00:00:00Z",
        "expiresAt": "2026-01-01T00:15:00Z",
        "renewAt": "2026-01-01T00:10:00Z",
        "secretResourceVersion": "42",
        "renewals": 0,
        "reissues": 0,
        "state": "Issued",
    }
    text = repr(entry) + repr(entry.to_json()) + repr(issued())
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
    assert second.reissues == 1
    other = CredentialEntry(name="api", state=EntryState.ISSUED)
    assert task_status.replace_entry([first, other], second) == (other, second)


def test_nearest_expiry_only_counts_issued_entries() -> None:
    a = CredentialEntry(
        name="a", state=EntryState.ISSUED, expires_at=T0 + datetime.timedelta(minutes=15)
    )
    b = CredentialEntry(
        name="b", state=EntryState.REVOKED, expires_at=T0 + datetime.timedelta(minutes=5)
    )
    c = CredentialEntry(name="c", state=EntryState.ISSUED)  # a static secret: no expiry
    assert task_status.nearest_expiry([a, b, c]) == "2026-01-01T00:15:00Z"
    assert task_status.nearest_expiry([b, c]) is None
    assert task_status.with_entries([a, b]) == {
        "credentials": [a.to_json(), b.to_json()],
        "expiresAt": "2026-01-01T00:15:00Z",
    }


def test_ended_status_keeps_an_existing_completion_time() -> None:
    old = {"completionTime": "2025-12-31T23:00:00Z", "conditions": []}
    status = task_status.ended(old, Phase.SUCCEEDED, "Completed", "done", 1, T0)
    assert status["completionTime"] == "2025-12-31T23:00:00Z"
    assert status["phase"] == "Succeeded"
    assert status["conditions"][0]["status"] == "False"


def test_revoked_marks_issued_entries_and_clears_schedules() -> None:
    later = T0 + datetime.timedelta(minutes=5)
    entries = [
        CredentialEntry(name="a", state=EntryState.ISSUED, renew_at=later, retire_at=later),
        CredentialEntry(name="b", state=EntryState.PENDING),
        CredentialEntry(name="c", state=EntryState.EXPIRED, expires_at=T0),
    ]
    assert task_status.revoked(entries) == (
        CredentialEntry(name="a", state=EntryState.REVOKED),
        CredentialEntry(name="b", state=EntryState.REVOKED),
        CredentialEntry(name="c", state=EntryState.EXPIRED, expires_at=T0),
    )
    assert task_status.with_entries(task_status.revoked(entries))["expiresAt"] is None
