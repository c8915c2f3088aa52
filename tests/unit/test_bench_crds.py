"""``make bench`` installs every CRD the operator watches (a run once measured an operator
whose AgentTaskApproval watch was unserved: Kopf warned "Unresolved resources")."""

from __future__ import annotations

from pathlib import Path

from bench.workload import CRDS

REPO = Path(__file__).resolve().parents[2]


def test_the_bench_installs_every_crd_of_the_repository() -> None:
    files = {p.stem for p in (REPO / "crds").glob("*.yaml") if p.stem != "kustomization"}
    assert set(CRDS) == files
