"""Fixtures for the client library's e2e tests: the lifecycle suite's operator (watching
only the test's namespace) and scenario (whose teardown scans everything the operator
said for credential values)."""

from __future__ import annotations

from e2e.lifecycle.conftest import operator, scenario

__all__ = ["operator", "scenario"]
