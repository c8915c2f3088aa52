"""Combine the coverage data of a `make test` run and print one line: services/ and total.

`make test` runs pytest under `coverage run`, and the operators the e2e tests start run
under it too (tests/support/operator.py), each writing its own data file in
.coverage-data/. This combines them, writes .coverage-data/coverage.json (per file, for
comparing runs) and prints the line coverage of the core (operator/agentcred/services/)
and of the whole package. Files no test imported count as not covered (`source_pkgs`).

Usage: .venv/bin/python scripts/coverage-summary.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import coverage

CORE = "agentcred/services/"


def main() -> int:
    cov = coverage.Coverage()  # [tool.coverage.*] in pyproject.toml
    data_dir = Path(cov.config.data_file).parent
    if not list(data_dir.glob("coverage*")):
        print("coverage: no data (was the run measured?)", file=sys.stderr)
        return 1
    cov.combine(keep=False)
    cov.save()
    cov.load()
    out = data_dir / "coverage.json"
    cov.json_report(outfile=str(out))
    files = json.loads(out.read_text())["files"]

    def share(prefix: str) -> tuple[int, int]:
        covered = total = 0
        for path, info in files.items():
            if prefix in Path(path).as_posix():
                covered += info["summary"]["covered_lines"]
                total += info["summary"]["num_statements"]
        return covered, total

    parts = []
    for label, prefix in (("services/", CORE), ("total", "agentcred/")):
        covered, total = share(prefix)
        pct = 100.0 * covered / total if total else 0.0
        parts.append(f"{label} {pct:.1f}% ({covered}/{total} lines)")
    print(f"coverage: {', '.join(parts)}; per file: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
