"""One fact, told three ways from one call (services/report.py): the Event, the audit
line and the Ready condition handed back for the caller's status patch. A fact whose
reasons drifted apart (a postponed renewal with an IssueFailed Event, a condition
without its Event) fails here."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from typing import Any

import pytest

from agentcred.models.api_names import EventReason, Reason
from agentcred.services import report
from agentcred.services.task_view import TaskView

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def task(ready: str | None = None) -> TaskView:
    conditions = [{"type": "Ready", "status": ready, "reason": "X"}] if ready else []
    return TaskView.from_body(
        {
            "metadata": {"namespace": "ns", "name": "t", "uid": "u", "generation": 2},
            "spec": {"credentials": [{"name": "db"}], "serviceAccountName": "agent"},
            "status": {"phase": "Active", "conditions": conditions},
        }
    )


def tell(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, view: TaskView, fact: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    posted: list[dict[str, Any]] = []

    async def post_event(api: Any, obj: Any, **event: Any) -> None:
        posted.append(event)

    monkeypatch.setattr(report.events, "post_event", post_event)
    caplog.set_level(logging.INFO, logger="agentcred.audit")
    ready = asyncio.run(report.Reporter(object(), lambda: NOW).tell(view, fact))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentcred.audit"]
    return posted, lines, ready


def test_a_postponed_renewal_is_a_warning_an_audit_failure_and_ready_false(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fact = report.renewal_postponed("db", "vault", "lease-1", "db: backend down")
    posted, lines, ready = tell(monkeypatch, caplog, task("True"), fact)
    assert posted == [
        {"type_": "Warning", "reason": EventReason.RENEW_FAILED, "message": "db: backend down"}
    ]
    assert [(a["action"], a["outcome"], a["reason"]) for a in lines] == [
        ("renew", "failure", "postponed")
    ]
    assert [(c["type"], c["status"], c["reason"]) for c in ready] == [
        ("Ready", "False", Reason.RENEW_FAILED)
    ]


def test_a_renewal_after_a_failure_sets_ready_back_to_true(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fact = report.renewed("db", "vault", "lease-1", "cid", "2026-12-01T13:00:00Z")
    posted, lines, ready = tell(monkeypatch, caplog, task("False"), fact)
    assert [e["reason"] for e in posted] == [EventReason.RENEWED]
    assert [(a["action"], a["outcome"]) for a in lines] == [("renew", "success")]
    assert [(c["status"], c["reason"]) for c in ready] == [("True", Reason.CREDENTIALS_ISSUED)]
    _, _, unchanged = tell(monkeypatch, caplog, task("True"), fact)
    assert unchanged is None  # already True: nothing for the patch


def test_a_refresh_is_audited_without_an_event(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fact = report.replaced(
        "db", "t-db", "gcpSecretManager", "", "cid", static=True, why=EventReason.REFRESHED
    )
    posted, lines, _ = tell(monkeypatch, caplog, task("True"), fact)
    assert posted == []
    assert [(a["action"], a["outcome"]) for a in lines] == [("refresh", "success")]


@pytest.mark.parametrize(
    ("reason", "event"),
    [
        (Reason.SECRET_CONFLICT, EventReason.SECRET_CONFLICT),
        (Reason.CREDENTIAL_NOT_FOUND, EventReason.ISSUE_FAILED),
        (Reason.BACKEND_UNAVAILABLE, EventReason.ISSUE_FAILED),
    ],
)
def test_a_waiting_task_shows_its_reason_and_a_name_conflict_its_own_event(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, reason: str, event: str
) -> None:
    posted, lines, ready = tell(monkeypatch, caplog, task(), report.waiting(reason, "m"))
    assert [(e["type_"], e["reason"]) for e in posted] == [("Warning", event)]
    assert lines == []
    assert [(c["status"], c["reason"]) for c in ready] == [("False", reason)]
