"""``make bench``'s scale scenario (bench/scale.py, issue 22) at a reduced size.

The benchmark runs as ``make bench`` runs it (its own operator process, its own
namespace, torn down on the way out) with 200 tasks instead of 20,000, so that the
scenario keeps working between the runs that measure it. Only what does not depend on
the machine's speed is asserted: every task Active, none re-issued by the restart, no
backend read by the restarted process, the figures reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SIZE = 200


def test_the_scale_scenario_fills_restarts_and_ends_its_tasks(
    testbed_env: dict[str, str], tmp_path: Path
) -> None:
    argv = [
        sys.executable,
        "-m",
        "bench.run",
        "--scenarios",
        "scale",
        "--scale-size",
        str(SIZE),
        "--scale-settle",
        "1",
        "--scale-rest",
        "0",
        "--idle-seconds",
        "1",
        "--restart-grace",
        "3",
        "--no-latest",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(
        argv,
        check=False,
        cwd=REPO,
        env={**os.environ, **testbed_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (result_file,) = tmp_path.glob("*.json")
    scale = json.loads(result_file.read_text())["scale"]
    assert scale["fill"]["create_errors"] == 0
    assert scale["fill"]["secrets"] == SIZE
    assert scale["fill"]["phases"] == {"Active": SIZE}
    restart = scale["restart"]
    assert restart["tasks"] == SIZE
    assert restart["reissued_tasks"] == 0
    assert scale["restart_issue_calls"] == 0  # one shared read at the fill, none after
    assert scale["fill"]["backend_calls"].get("issue", 0) <= 1
    for figure in ("rss_active_mib", "rss_restarted_mib", "rss_after_end_mib"):
        assert scale[figure] > 0, figure
    assert "scale: restart" in done.stdout  # the table row
    assert "teardown:" in done.stderr and "(run `python -m bench.run --cleanup`" not in done.stderr
