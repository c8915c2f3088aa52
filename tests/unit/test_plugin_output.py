"""``kubectl agentcred``'s views, from status as the operator writes it: what ``status``
and ``leases`` print (and never print), the flags that build a quarantine, the exit codes."""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from agentcred.plugin import leases, main, output, quarantine, status, tasks
from agentcred.plugin.api import _error, kubeconfig_path
from agentcred.plugin.quarantine import UsageError

NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def task(phase: str = "Active", **status_fields: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "claim-4711", "namespace": "team-a", "uid": "u1"},
        "spec": {"serviceAccountName": "research-agent", "credentials": [{"name": "db"}]},
        "status": {
            "phase": phase,
            "startTime": "2026-12-03T11:50:00Z",
            "credentials": [
                {
                    "name": "db",
                    "secretName": "claim-4711-db",
                    "backend": "vault",
                    "leaseId": "database/creds/readonly/abc",
                    "state": "Issued",
                    "issuedAt": "2026-12-03T11:50:00Z",
                    "renewAt": "2026-12-03T12:00:40Z",
                    "expiresAt": "2026-12-03T12:05:00Z",
                    "renewals": 2,
                    "secretResourceVersion": "991",
                }
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "CredentialsIssued",
                    "message": "all credentials issued",
                    "lastTransitionTime": "2026-12-03T11:50:01Z",
                }
            ],
            **status_fields,
        },
    }


EVENTS = [
    {
        "type": "Normal",
        "reason": "LeaseRenewed",
        "message": "db: lease renewed until 2026-12-03T12:05:00Z",
        "count": 2,
        "lastTimestamp": "2026-12-03T11:58:00Z",
    }
]


def test_status_shows_each_credential_its_times_conditions_and_events() -> None:
    text = status.render(status.report(task(), EVENTS), NOW)
    assert "team-a/claim-4711" in text and "Active" in text and "research-agent" in text
    assert "database/creds/readonly/abc" in text and "claim-4711-db" in text
    assert "in 40s" in text and "in 5m" in text and "10m ago" in text  # renew, expiry, issue
    assert "CredentialsIssued" in text and "LeaseRenewed" in text and "x2" in text
    assert "Refused by" not in text
    assert "secretResourceVersion" not in json.dumps(status.report(task(), EVENTS))


def test_status_of_a_refused_task_names_the_rule_that_refused_it() -> None:
    rule = (
        "AgentCredential db: spec.vault.dynamic.path: database/creds/admin is outside allowedPaths"
    )
    refused = task("Failed", reason="NotAllowed", message=rule, credentials=[])
    view = status.report(refused, [])
    assert view["refusedBy"] == {"reason": "NotAllowed", "rule": rule}
    assert view["notIssued"] == ["db"]
    text = status.render(view, NOW)
    assert f"Refused by:      NotAllowed: {rule}" in text and "(none issued)" in text


def test_status_of_a_quarantined_task() -> None:
    message = "CredentialQuarantine q1: prompt injection"
    view = status.report(task("Failed", reason="Quarantined", message=message), [])
    assert view["refusedBy"]["reason"] == "Quarantined"


def test_leases_lists_issued_credentials_by_namespace_and_backend() -> None:
    other = task()
    other["metadata"] = {"name": "t0", "namespace": "team-0", "uid": "u0"}
    ended = task("Succeeded")
    rows = leases.rows([task(), other, ended])
    assert [(r["namespace"], r["task"]) for r in rows] == [
        ("team-0", "t0"),
        ("team-a", "claim-4711"),
    ]
    assert set(rows[0]) == {
        "namespace",
        "backend",
        "task",
        "credential",
        "leaseId",
        "renewAt",
        "expiresAt",
    }
    text = leases.render(rows, NOW)
    assert "2 active lease(s): team-0/vault: 1, team-a/vault: 1" in text
    assert leases.render([], NOW) == "No active leases.\n"


def args(**given: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "namespace": [],
        "service_account": [],
        "backend": [],
        "credential": [],
        "selector": None,
        "namespace_selector": None,
        "reason": "leak",
    }
    return argparse.Namespace(**{**base, **given})


def test_quarantine_flags_become_the_spec() -> None:
    spec = quarantine.spec_of(
        args(namespace=["team-a"], service_account=["team-b/agent"], selector="agent=x,run=7")
    )
    assert spec == {
        "reason": "leak",
        "serviceAccounts": ["team-b/agent"],
        "namespaces": ["team-a"],
        "taskSelector": {"matchLabels": {"agent": "x", "run": "7"}},
    }


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"service_account": ["agent"]},
        {"selector": "agent"},
        {"namespace": ["a"], "reason": " "},
    ],
)
def test_quarantine_without_a_proper_target_is_a_usage_error(given: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as caught:
        quarantine.spec_of(args(**given))
    assert caught.value.code == 2


def test_end_sends_completed_and_with_failed_the_reason() -> None:
    end = argparse.Namespace(failed=False, reason=None)
    assert tasks.end_patch(end) == {"spec": {"completed": True}}
    failed = argparse.Namespace(failed=True, reason="wrong answer")
    assert tasks.end_patch(failed) == {"spec": {"completed": True, "failureReason": "wrong answer"}}
    with pytest.raises(UsageError):
        tasks.end_patch(argparse.Namespace(failed=True, reason=None))


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main.main(["status"])
    assert caught.value.code == 2
    capsys.readouterr()


def test_durations_and_formats() -> None:
    assert output.duration(59) == "59s" and output.duration(125) == "2m5s"
    assert output.duration(3 * 3600 + 60) == "3h1m" and output.duration(90000) == "1d1h"
    assert output.relative(None, NOW) == "-"
    assert json.loads(output.dump({"a": 1}, "json")) == {"a": 1}
    assert output.dump({"a": 1}, "yaml") == "a: 1\n"


@pytest.mark.parametrize(("status", "code"), [(404, 3), (403, 4), (401, 4), (500, 1), (422, 1)])
def test_api_answers_become_exit_codes(status: int, code: int) -> None:
    error = _error("AgentTask team-a/x", ApiException(status=status, reason="r"))
    assert error.code == code and "AgentTask team-a/x" in str(error)


def test_the_kubeconfig_is_the_flag_then_the_first_of_kubeconfig(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a/one:/a/two")
    assert kubeconfig_path(None) == "/a/one"
    assert kubeconfig_path("/b/mine") == "/b/mine"
