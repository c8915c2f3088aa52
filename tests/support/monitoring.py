"""The shipped alert rules and dashboard, read the way the monitoring tests need them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from support.kube import REPO

RULES = REPO / "monitoring" / "prometheus" / "agentcred-rules.yaml"
RULE_TESTS = REPO / "monitoring" / "prometheus" / "tests"
DASHBOARD = REPO / "monitoring" / "grafana" / "agentcred.json"
# What Grafana puts in place of its variables before sending a query to Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": ".*"}


def rule_groups() -> dict[str, Any]:
    """The PrometheusRule's spec: plain Prometheus rule groups, as promtool reads them."""
    spec: dict[str, Any] = yaml.safe_load(RULES.read_text())["spec"]
    return spec


def alerts() -> list[dict[str, Any]]:
    return [r for g in rule_groups()["groups"] for r in g["rules"] if "alert" in r]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return result


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, Grafana variables substituted."""
    queries = []
    for panel in _panels(dashboard()["panels"]):
        for target in panel.get("targets") or []:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            queries.append((f"panel {panel['id']} {panel['title']!r} {target['refId']}", expr))
    return queries


def metric_names(promql: str) -> set[str]:
    return set(re.findall(r"\bagentcred_[a-z_]+\b", promql))
