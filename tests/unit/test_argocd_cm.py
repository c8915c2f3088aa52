"""The argocd-cm snippet carries exactly the health checks of argocd/resource_customizations/.

The snippet is generated (scripts/generate-argocd-cm.py); this fails when someone edits
a health.lua and forgets to regenerate, or edits the snippet by hand.
"""

from __future__ import annotations

import subprocess
import sys

import yaml

from support.kube import REPO

SNIPPET = REPO / "manifests" / "argocd" / "argocd-cm.yaml"
CUSTOMIZATIONS = REPO / "argocd" / "resource_customizations"


def test_snippet_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "generate-argocd-cm.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_snippet_health_checks_equal_the_files() -> None:
    data = yaml.safe_load(SNIPPET.read_text())["data"]
    scripts = sorted(CUSTOMIZATIONS.glob("*/*/health.lua"))
    assert {p.parent.name for p in scripts} >= {"AgentTask", "AgentCredential", "CredentialBackend"}
    for script in scripts:
        key = f"resource.customizations.health.{script.parent.parent.name}_{script.parent.name}"
        assert data[key] == script.read_text(), key


def test_snippet_ignores_renewal_churn_on_tasks() -> None:
    data = yaml.safe_load(SNIPPET.read_text())["data"]
    assert data["resource.ignoreResourceUpdatesEnabled"] == "true"
    ignored = yaml.safe_load(
        data["resource.customizations.ignoreResourceUpdates.agentcred.io_AgentTask"]
    )
    assert "/status/credentials" in ignored["jsonPointers"]
    # Phase and conditions decide health: they must never be ignored.
    assert "/status" not in ignored["jsonPointers"]
    assert not any(
        p.startswith(("/status/phase", "/status/conditions")) for p in ignored["jsonPointers"]
    )
