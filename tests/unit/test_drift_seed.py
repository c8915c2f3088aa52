"""What a restart learns from task statuses before the Secret watch lists (services/drift.py)."""

from __future__ import annotations

from typing import Any

from agentcred.services.drift import written_versions


def _task(phase: str, entries: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "team-a", "name": "t", **meta},
        "status": {"phase": phase, "credentials": entries},
    }


ISSUED = {"name": "db", "secretName": "t-db", "state": "Issued", "secretResourceVersion": "41"}


def test_an_active_task_gives_the_version_of_each_issued_secret() -> None:
    revoked = {**ISSUED, "name": "kv", "secretName": "t-kv", "state": "Revoked"}
    assert written_versions(_task("Active", [ISSUED, revoked])) == {("team-a", "t-db"): "41"}


def test_tasks_that_are_not_active_or_are_being_deleted_give_nothing() -> None:
    assert written_versions(_task("Pending", [ISSUED])) == {}
    assert written_versions(_task("Succeeded", [ISSUED])) == {}
    assert (
        written_versions(_task("Active", [ISSUED], deletionTimestamp="2026-01-01T00:00:00Z")) == {}
    )


def test_entries_without_a_recorded_version_are_checked_as_before() -> None:
    unrecorded = {k: v for k, v in ISSUED.items() if k != "secretResourceVersion"}
    assert written_versions(_task("Active", [unrecorded])) == {}
    assert written_versions({"metadata": {}, "status": None}) == {}
