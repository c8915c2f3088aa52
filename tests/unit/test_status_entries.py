"""status.credentials[] entries: parsed once into CredentialEntry, written back unchanged."""

from __future__ import annotations

import copy
import dataclasses
import datetime
from typing import Any

import pytest

from agentcred.models.status import CredentialEntry, EntryState, entries_json, parse_entries
from agentcred.services.drift import written_versions
from agentcred.services.task_view import TaskView

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

# As the operator writes them: a lease mid-overlap, a static secret, a revoked lease.
LEASE: dict[str, Any] = {
    "name": "db",
    "secretName": "t-db",
    "backend": "vault",
    "leaseId": "database/creds/ro/abc",
    "renewable": True,
    "revocable": True,
    "issuedAt": "2026-01-01T00:00:00Z",
    "expiresAt": "2026-01-01T00:15:00Z",
    "renewAt": "2026-01-01T00:10:00Z",
    "retireAt": "2026-01-01T00:01:00Z",
    "secretResourceVersion": "42",
    "renewals": 3,
    "reissues": 1,
    "state": "Issued",
}
STATIC: dict[str, Any] = {
    "name": "api",
    "secretName": "t-api",
    "backend": "awsSecretsManager",
    "leaseId": "",
    "renewable": False,
    "revocable": False,
    "issuedAt": "2026-01-01T00:00:00Z",
    "renewAt": "2026-01-01T01:00:00Z",
    "secretResourceVersion": "7",
    "renewals": 0,
    "reissues": 0,
    "state": "Issued",
}
REVOKED: dict[str, Any] = {
    **{k: v for k, v in LEASE.items() if k not in ("renewAt", "retireAt")},
    "name": "old",
    "state": "Revoked",
}


@pytest.mark.parametrize("raw", [LEASE, STATIC, REVOKED], ids=["lease", "static", "revoked"])
def test_an_entry_the_operator_wrote_round_trips_unchanged(raw: dict[str, Any]) -> None:
    original = copy.deepcopy(raw)
    assert CredentialEntry.from_json(raw).to_json() == original
    assert raw == original  # parsing never changes its input


def test_times_are_datetimes_and_the_state_an_enum() -> None:
    entry = CredentialEntry.from_json(LEASE)
    assert entry.issued_at == T0
    assert entry.expires_at == T0 + datetime.timedelta(minutes=15)
    assert entry.renew_at == T0 + datetime.timedelta(minutes=10)
    assert entry.retire_at == T0 + datetime.timedelta(minutes=1)
    assert entry.state is EntryState.ISSUED
    assert (entry.renewals, entry.reissues, entry.lease_id) == (3, 1, "database/creds/ro/abc")
    assert CredentialEntry.from_json(STATIC).expires_at is None


def test_entries_are_frozen_and_updated_by_replace() -> None:
    entry = CredentialEntry.from_json(LEASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.state = EntryState.REVOKED  # type: ignore[misc]
    done = dataclasses.replace(entry, retire_at=None)
    assert "retireAt" not in done.to_json()
    assert done.to_json() == {k: v for k, v in LEASE.items() if k != "retireAt"}


@pytest.mark.parametrize("state", list(EntryState))
def test_every_state_is_written_as_its_name(state: EntryState) -> None:
    assert state == state.value  # a StrEnum: compares and serialises as the string
    entry = CredentialEntry.from_json({**LEASE, "state": state.value})
    assert entry.state is state
    assert entry.to_json()["state"] == state.value


def test_state_values_are_the_documented_ones() -> None:
    assert [s.value for s in EntryState] == ["Issued", "Revoked", "Expired", "Pending"]


def test_times_in_other_rfc3339_forms_are_written_back_in_the_operators() -> None:
    entry = CredentialEntry.from_json({**LEASE, "expiresAt": "2026-01-01T01:15:00.123+01:00"})
    assert entry.expires_at == T0 + datetime.timedelta(minutes=15, milliseconds=123)
    assert entry.to_json()["expiresAt"] == "2026-01-01T00:15:00Z"


@pytest.mark.parametrize(
    ("field", "value", "attribute", "parsed"),
    [
        ("state", "Bogus", "state", None),
        ("state", None, "state", None),
        ("state", ["Issued"], "state", None),
        ("expiresAt", "not a time", "expires_at", None),
        ("renewAt", 12, "renew_at", None),
        ("issuedAt", "", "issued_at", None),
        ("renewals", "3", "renewals", 0),
        ("reissues", True, "reissues", 0),
        ("renewable", "yes", "renewable", False),
        ("leaseId", 5, "lease_id", ""),
        ("secretResourceVersion", None, "secret_resource_version", ""),
    ],
)
def test_a_malformed_value_is_read_as_unknown(
    field: str, value: object, attribute: str, parsed: object
) -> None:
    entry = CredentialEntry.from_json({**LEASE, field: value})
    assert getattr(entry, attribute) == parsed


def test_a_naive_time_is_taken_as_utc() -> None:
    assert CredentialEntry.from_json({"name": "a", "renewAt": "2026-01-01T00:00:00"}).renew_at == T0


def test_a_partial_entry_parses_and_gains_the_always_written_keys() -> None:
    entry = CredentialEntry.from_json({"name": "a", "state": "Pending"})
    assert entry == CredentialEntry(name="a", state=EntryState.PENDING)
    assert entry.to_json() == {
        "name": "a",
        "secretName": "",
        "backend": "",
        "leaseId": "",
        "renewable": False,
        "revocable": False,
        "secretResourceVersion": "",
        "renewals": 0,
        "reissues": 0,
        "state": "Pending",
    }


def test_items_without_a_name_are_dropped() -> None:
    raw = [LEASE, "junk", None, {"state": "Issued"}, {"name": 3}, {"name": ""}, STATIC]
    assert [e.name for e in parse_entries(raw)] == ["db", "api"]
    assert parse_entries(None) == ()
    assert parse_entries({"name": "db"}) == ()
    assert entries_json(parse_entries([LEASE, STATIC])) == [LEASE, STATIC]


def view(status: dict[str, Any]) -> TaskView:
    return TaskView.from_body(
        {
            "metadata": {"namespace": "ns", "name": "t", "uid": "u"},
            "spec": {"credentials": [{"name": "db"}, {"name": "api"}]},
            "status": status,
        }
    )


def test_the_task_view_parses_its_entries_once() -> None:
    task = view({"phase": "Active", "credentials": [LEASE, STATIC]})
    assert task.entries is task.entries
    assert [e.name for e in task.entries] == ["db", "api"]
    assert task.entry("api") == CredentialEntry.from_json(STATIC)
    assert task.entry("missing") is None
    assert view({}).entries == ()
    assert view({"credentials": "junk"}).entries == ()


def test_written_versions_reads_only_issued_entries_of_active_tasks() -> None:
    body = {
        "metadata": {"namespace": "ns"},
        "status": {
            "phase": "Active",
            "credentials": [LEASE, STATIC, REVOKED, {"name": "x", "state": "Issued"}],
        },
    }
    assert written_versions(body) == {("ns", "t-db"): "42", ("ns", "t-api"): "7"}
    assert written_versions({**body, "status": {**body["status"], "phase": "Pending"}}) == {}
