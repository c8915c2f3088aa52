"""What ``make bench`` says of a restart: what the new process logged (audit lines folded
to their action) and which changed tasks were due anyway, so a restart that redid work
says which work (issue 22's open restart figure: 2,373 tasks refreshed by the new
process, cause not in the report)."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

from bench.operator_proc import Operator
from bench.scenarios import redone_by_restart


def _line(message: str, severity: str = "info") -> bytes:
    return json.dumps({"severity": severity, "message": message}).encode() + b"\n"


def _audit(action: str, task: str) -> str:
    record = {"action": action, "outcome": "success", "task": task, "correlation_id": "ab12cd"}
    return json.dumps(record, sort_keys=True)


def test_audit_lines_count_by_action_and_other_lines_with_numbers_folded(
    tmp_path: Path,
) -> None:
    log = tmp_path / "operator.log"
    log.write_bytes(
        _line(_audit("refresh", "scale-1"))
        + _line(_audit("refresh", "scale-2"))
        + _line(_audit("issue", "scale-3"))
        + _line("Secret agentcred-bench/scale-17-kv was edited", "warning")
        + _line("Secret agentcred-bench/scale-18-kv was edited", "warning")
        + b"not json\n"
    )
    op = Operator(MagicMock(), log, 0, 0, time.monotonic())
    summary = op.log_summary(0)
    assert summary["counts"] == {"info": 3, "warning": 2}
    assert dict(summary["top"]) == {
        "audit refresh success ": 2,
        "audit issue success ": 1,
        "Secret agentcred-bench/scale-N-kv was edited": 2,
    }
    assert op.log_problems(0)["counts"] == {"warning": 2}


def test_a_restart_counts_as_redone_only_what_was_not_due() -> None:
    def entry(issued: str) -> tuple[Any, ...]:
        return (("kv", issued, "", 0),)

    def at(text: str) -> datetime.datetime:
        return datetime.datetime.fromisoformat(text)

    before = {name: entry("2026-12-04T02:11:00+00:00") for name in ("kept", "due", "early")}
    due_at = {
        "kept": at("2026-12-04T02:56:00+00:00"),
        "due": at("2026-12-04T02:54:30+00:00"),
        "early": at("2026-12-04T02:58:00+00:00"),
    }
    after = {
        "kept": before["kept"],
        "due": entry("2026-12-04T02:54:31+00:00"),
        "early": entry("2026-12-04T02:55:01+00:00"),
    }
    looked_at = datetime.datetime(2026, 12, 4, 2, 55, 10, tzinfo=datetime.UTC)
    assert redone_by_restart(before, after, due_at, looked_at) == (1, 1)
