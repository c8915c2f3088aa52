"""``make bench``'s per-verb table of API server requests per task (issue 22's targets:
<= 5 from create to Secret, <= 4 from completion to gone): the benchmark's own requests
are taken out, and the table prints one column per measured phase."""

from __future__ import annotations

from bench import report
from bench.scenarios import _per_task


def test_the_benchmarks_own_requests_are_not_counted_as_the_operators() -> None:
    delta = {
        "PATCH agenttasks": 100.0,  # the benchmark's completions
        "DELETE agenttasks": 100.0,  # its deletions
        "LIST agenttasks": 7.0,  # its polling until they are gone
        "GET secrets": 100.0,
        "DELETE secrets": 100.0,
        "POST events": 100.0,
        "PATCH agenttasks/status": 100.0,
    }
    own = {"PATCH agenttasks": 100.0, "DELETE agenttasks": 100.0, "LIST agenttasks": 7.0}
    counts = _per_task(delta, 100, 0, own)
    assert counts["total"] == 4.0
    assert "PATCH agenttasks" not in counts and "DELETE agenttasks" not in counts


def test_the_creates_are_the_benchmarks_and_small_rows_are_left_out() -> None:
    delta = {"POST agenttasks": 1000.0, "POST secrets": 1000.0, "GET namespaces": 3.0}
    counts = _per_task(delta, 1000, 1000)
    assert counts == {"POST secrets": 1.0, "total": 1.0}


def test_the_report_prints_both_phases_per_verb() -> None:
    results = {
        "sizes": [
            {
                "size": 1000,
                "burst": {"api_requests_per_task": {"POST secrets": 1.02, "total": 4.1}},
                "complete": {"api_requests_per_task": {"DELETE secrets": 1.0, "total": 4.0}},
            }
        ]
    }
    lines = report._request_rows(results)
    assert "| request | create -> Secret, 1,000 | completion -> gone, 1,000 |" in lines
    assert "| POST secrets | 1.02 | - |" in lines
    assert "| DELETE secrets | - | 1.00 |" in lines
    assert "| **total** | 4.1 | 4.0 |" in lines
