"""The hardening cases reuse the lifecycle fixtures (operator per test, leak scan)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from e2e.lifecycle.conftest import operator, scenario

__all__ = ["operator", "scenario"]
