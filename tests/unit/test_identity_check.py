"""The identity check (models/identity.py): the operator acts only for the identity a task
was first issued under, and every way of changing it -- ServiceAccount set, removed or
changed, a credential added, removed or pointed at another Secret -- is caught."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from agentcred.backends.base import Session
from agentcred.models import identity
from agentcred.models.task import AgentTaskSpec, parse_task_spec
from agentcred.services import lease_records


def spec(service_account: str | None = None, *creds: dict[str, str]) -> AgentTaskSpec:
    body: dict[str, Any] = {"credentials": list(creds) or [{"name": "db"}]}
    if service_account is not None:
        body["serviceAccountName"] = service_account
    return parse_task_spec(body)


def recorded_as(first: AgentTaskSpec) -> dict[str, Any]:
    """A task's status after the operator recorded ``first`` (as lifecycle does)."""
    return {"phase": "Active", "identity": dict(identity.TaskIdentity.of(first).status())}


def test_a_new_task_is_recorded_and_the_record_reads_back() -> None:
    first = spec("agent", {"name": "db", "secretName": "db-creds"}, {"name": "kv"})
    verdict = identity.check({}, first)
    assert verdict == identity.UNRECORDED
    status = recorded_as(first)
    assert status["identity"] == {
        "serviceAccountName": "agent",
        "credentials": [{"name": "db", "secretName": "db-creds"}, {"name": "kv"}],
    }
    assert identity.recorded(status) == identity.TaskIdentity.of(first)
    assert identity.check(status, first) == identity.SAME


def test_the_default_service_account_is_recorded_by_name() -> None:
    assert identity.TaskIdentity.of(spec()).status()["serviceAccountName"] == "default"
    # Leaving it unset or writing "default" is the same identity.
    assert identity.check(recorded_as(spec()), spec("default")) == identity.SAME


def test_the_order_of_credentials_carries_no_meaning() -> None:
    first = spec("agent", {"name": "a"}, {"name": "b"})
    assert identity.check(recorded_as(first), spec("agent", {"name": "b"}, {"name": "a"})) == (
        identity.SAME
    )


@pytest.mark.parametrize(
    ("first", "now", "says"),
    [
        # set from unset: the attack of issue 18 (remove, then set a privileged account)
        (spec(), spec("cluster-admin-sa"), ["'cluster-admin-sa'", "'default'"]),
        # removed: falls back to 'default'
        (spec("launcher"), spec(), ["'default'", "'launcher'"]),
        (spec("agent"), spec("other"), ["'other'", "'agent'"]),
        (spec(None, {"name": "db"}), spec(None, {"name": "db"}, {"name": "x"}), ["added x"]),
        (spec(None, {"name": "db"}, {"name": "x"}), spec(None, {"name": "db"}), ["removed x"]),
        (
            spec(None, {"name": "db"}),
            spec(None, {"name": "db", "secretName": "kube-root"}),
            ["secretName changed for db"],
        ),
        (
            spec(None, {"name": "db", "secretName": "a"}),
            spec(None, {"name": "db", "secretName": "b"}),
            ["secretName changed for db"],
        ),
    ],
    ids=["set-from-unset", "removed", "changed", "added", "removed-cred", "secret-set", "secret"],
)
def test_every_change_is_caught_and_named(
    first: AgentTaskSpec, now: AgentTaskSpec, says: list[str]
) -> None:
    verdict = identity.check(recorded_as(first), now)
    assert verdict.changed and not verdict.record
    for text in says:
        assert text in verdict.message, verdict.message
    assert "create a new AgentTask" in verdict.message


def test_any_two_identities_are_the_same_only_when_equal() -> None:
    """Exhaustively over a small domain: the check says 'changed' exactly when the spec's
    identity differs from the recorded one."""
    accounts = [None, "default", "agent", "admin"]
    cred_sets = [
        ({"name": "db"},),
        ({"name": "db", "secretName": "s"},),
        ({"name": "db"}, {"name": "kv"}),
        ({"name": "kv"}, {"name": "db"}),
        ({"name": "kv"},),
    ]
    specs = [spec(a, *c) for a, c in itertools.product(accounts, cred_sets)]
    for first, now in itertools.product(specs, specs):
        same = identity.TaskIdentity.of(first) == identity.TaskIdentity.of(now)
        verdict = identity.check(recorded_as(first), now)
        assert verdict.changed is not same, (first, now)


def test_a_session_logged_in_as_another_account_is_a_change_even_without_a_status_record() -> None:
    now = spec("admin")
    verdict = identity.check({}, now, ["agent", "admin"])
    assert verdict.changed
    assert "'agent'" in verdict.message
    # Records from before the account was kept carry an empty one: ignored.
    assert identity.check({}, now, ["", "admin"]) == identity.UNRECORDED
    assert identity.check(recorded_as(now), now, ["admin"]) == identity.SAME


@pytest.mark.parametrize(
    "record",
    [
        "agent",
        {},
        {"serviceAccountName": "agent"},
        {"serviceAccountName": "", "credentials": []},
        {"serviceAccountName": "agent", "credentials": [{"secretName": "x"}]},
        {"serviceAccountName": "agent", "credentials": "db"},
    ],
)
def test_an_unreadable_record_is_never_trusted(record: Any) -> None:
    verdict = identity.check({"identity": record}, spec("agent"))
    assert verdict.changed
    assert "cannot tell" in verdict.message


def test_session_records_keep_the_account_they_were_logged_in_as() -> None:
    record = lease_records.LeaseRecord(
        credential="db",
        backend="vault",
        spec={},
        lease_id="",
        session=Session(ref="accessor", secret="token"),
        service_account="agent",
    )
    assert lease_records.LeaseRecord.load(record.dump()).service_account == "agent"
    older = json.loads(record.dump())
    del older["serviceAccount"]
    assert lease_records.LeaseRecord.load(json.dumps(older)).service_account == ""
