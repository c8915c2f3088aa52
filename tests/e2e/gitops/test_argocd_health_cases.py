"""Every case in argocd/resource_customizations/*/*/health_test.yaml, run through Argo
CD's own Lua runtime (gopher-lua, built by scripts/build-tools.sh) the way Argo CD's
``TestLuaHealthScript`` runs the checks shipped inside it, and once more the way it runs
a check from argocd-cm without ``useOpenLibs`` (base, table and a safe os only).

The test data are objects the operator produced on the testbed (written by
``test_argocd_health_live.py`` with ``AGENTCRED_CAPTURE_TESTDATA=1``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from support.kube import REPO
from support.tools import argocd_health

CUSTOMIZATIONS = REPO / "argocd" / "resource_customizations"
KINDS = ("AgentTask", "AgentCredential", "CredentialBackend")


def kind_dirs() -> list[Path]:
    return sorted(p.parent for p in CUSTOMIZATIONS.glob("*/*/health.lua"))


def cases() -> list[Any]:
    params = []
    for folder in kind_dirs():
        spec = yaml.safe_load((folder / "health_test.yaml").read_text())
        for case in spec["tests"]:
            for libs in ("builtin", "configmap"):
                params.append(
                    pytest.param(
                        folder,
                        case,
                        libs,
                        id=f"{folder.name}/{Path(case['inputPath']).stem}/{libs}",
                    )
                )
    return params


@pytest.mark.parametrize(("folder", "case", "libs"), cases())
def test_health_case_matches_argocd_verdict(
    argocd_lua: Path, folder: Path, case: dict[str, Any], libs: str
) -> None:
    verdict = argocd_health(argocd_lua, folder / "health.lua", folder / case["inputPath"], libs)
    expected = case["healthStatus"]
    assert verdict == {"status": expected["status"], "message": expected.get("message", "")}


def test_every_kind_has_a_check_with_test_data_for_each_status() -> None:
    present = {p.name for p in kind_dirs()}
    assert set(KINDS) <= present, f"missing health checks: {set(KINDS) - present}"
    for folder in kind_dirs():
        spec = yaml.safe_load((folder / "health_test.yaml").read_text())
        listed = {case["inputPath"] for case in spec["tests"]}
        on_disk = {f"testdata/{p.name}" for p in (folder / "testdata").glob("*.yaml")}
        assert listed == on_disk, f"{folder.name}: test data without a case or case without data"
        statuses = {case["healthStatus"]["status"] for case in spec["tests"]}
        assert {"Healthy", "Progressing", "Degraded"} <= statuses, folder.name


def test_test_data_are_objects_of_their_kind() -> None:
    for folder in kind_dirs():
        for path in (folder / "testdata").glob("*.yaml"):
            obj = yaml.safe_load(path.read_text())
            assert obj["apiVersion"].startswith(f"{folder.parent.name}/"), path
            assert obj["kind"] == folder.name, path
            assert "managedFields" not in obj["metadata"], f"{path}: untrimmed"


def test_backend_and_credential_share_one_check() -> None:
    """Both kinds report a Ready condition; one script, kept identical, judges both."""
    credential = (CUSTOMIZATIONS / "agentcred.io" / "AgentCredential" / "health.lua").read_text()
    backend = (CUSTOMIZATIONS / "agentcred.io" / "CredentialBackend" / "health.lua").read_text()
    assert credential == backend
