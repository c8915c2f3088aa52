"""promtool (Prometheus 3's own rule checker and PromQL parser), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.tools import build_tool


@pytest.fixture(scope="session")
def promtool() -> Path:
    return build_tool("promtool")
