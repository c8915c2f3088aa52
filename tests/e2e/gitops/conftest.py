"""Tools for the GitOps tests (Argo CD's Lua runtime, helm), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.tools import build_tool


@pytest.fixture(scope="session")
def argocd_lua() -> Path:
    return build_tool("argocd-lua")


@pytest.fixture(scope="session")
def helm() -> Path:
    return build_tool("helm")
