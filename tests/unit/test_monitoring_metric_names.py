"""The dashboard and the alerts name only metrics the operator exports.

A renamed metric would leave a panel blank or an alert silent without any error; this
compares every ``agentcred_*`` name in the PromQL against what ``agentcred.metrics``
registers (counters export ``_total``, histograms ``_bucket``/``_sum``/``_count``).
"""

from __future__ import annotations

from prometheus_client import REGISTRY

import agentcred.metrics  # noqa: F401  (registers the operator's metrics)
from support.monitoring import alerts, dashboard, dashboard_queries, metric_names

SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ()):
            names.add(family.name + suffix)
    return {n for n in names if n.startswith("agentcred_")}


def test_dashboard_queries_name_exported_metrics() -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    assert used, "the dashboard queries no agentcred metric"
    assert used <= exported(), f"not exported by the operator: {used - exported()}"


def test_alerts_name_exported_metrics() -> None:
    used = set().union(*(metric_names(a["expr"]) for a in alerts()))
    assert used <= exported(), f"not exported by the operator: {used - exported()}"


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    """Rates and latencies by backend, failures by reason, tasks, sweep, outcomes."""
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for needle in (
        'operation="issue"',
        'operation="renew"',
        'operation="revoke"',
        "agentcred_issue_duration_seconds_bucket",
        "agentcred_renew_duration_seconds_bucket",
        "agentcred_revoke_duration_seconds_bucket",
        "sum by (operation, outcome)",
        "agentcred_active_tasks",
        "agentcred_scheduled_items",
        "agentcred_sweep_found_total",
        "agentcred_sweep_revoke_failed_total",
        "sum by (backend, outcome)",
        "agentcred_errors_total",
    ):
        assert needle in exprs, needle
    assert dashboard()["uid"] == "agentcred-operator"
