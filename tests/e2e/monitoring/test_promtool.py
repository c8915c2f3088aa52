"""The alert rules and the dashboard's queries, checked by Prometheus' own promtool.

* ``promtool check rules`` on the PrometheusRule's groups (syntax, templates, labels);
* ``promtool test rules`` on every file in monitoring/prometheus/tests/, each of which
  makes its alert fire on a realistic series and stay quiet on a near miss;
* every dashboard query, with Grafana's variables filled in, parsed by the same PromQL
  parser (as recording rules in a scratch rule file).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support.monitoring import RULE_TESTS, alerts, dashboard_queries, rule_groups


def promtool_run(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "agentcred.rules.yaml").write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
    return tmp_path


def test_alert_rules_pass_promtool_check(promtool: Path, rules_dir: Path) -> None:
    result = promtool_run(promtool, "check", "rules", "agentcred.rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout, result.stdout


@pytest.mark.parametrize("test_file", sorted(RULE_TESTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_alert_unit_tests_pass(promtool: Path, rules_dir: Path, test_file: Path) -> None:
    shutil.copy(test_file, rules_dir / test_file.name)
    result = promtool_run(promtool, "test", "rules", test_file.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS.glob("*.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test") or []:
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names == {
        "AgentcredRenewalsFailing",
        "AgentcredRevocationsFailing",
        "AgentcredQuarantineIncomplete",
        "AgentcredOrphansFound",
        "AgentcredBackendDown",
        "AgentcredOperatorAbsent",
        "AgentcredApprovalWaitingTooLong",
    }
    assert names <= fired, f"never tested firing: {names - fired}"
    assert names <= quiet, f"never tested staying quiet: {names - quiet}"


def test_every_dashboard_query_parses(promtool: Path, tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    for where, expr in queries:
        assert "$" not in expr, f"{where}: unsubstituted Grafana variable in {expr}"
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr, "labels": {"where": re.sub(r"\W", "_", w)}}
        for i, (w, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool_run(promtool, "check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout, result.stdout
