"""The testbed's Jaeger (agentcred_testbed/jaeger.py): its config binds only the ports it
was given, on 127.0.0.1, and a testbed started before Jaeger joined it is reused as it is
(the shared testbed is never restarted for it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from agentcred_testbed import jaeger, stack
from agentcred_testbed.procs import StateDir


def test_the_config_listens_only_where_it_was_told() -> None:
    text = jaeger.config(41001, 41002, 41003)
    endpoints = re.findall(r"endpoint: (\S+)", text)
    assert sorted(endpoints) == ["127.0.0.1:41001", "127.0.0.1:41002", "127.0.0.1:41003"]
    parsed = yaml.safe_load(text)
    assert parsed["service"]["telemetry"]["metrics"]["level"] == "none"  # no :8888
    assert parsed["extensions"]["jaeger_query"]["enable_tracing"] is False
    assert parsed["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    """A testbed whose every recorded process is alive (this one), Jaeger's aside."""
    state = StateDir(tmp_path)
    state.ensure()
    for module in stack.started(state):
        for name in module.NAMES:
            if module is not jaeger:
                (state.pids / f"{name}.pid").write_text(str(os.getpid()))
    return state


def test_a_testbed_from_before_jaeger_is_reused(state: StateDir) -> None:
    stack.write_env(state, {"KUBECONFIG": "/k"})
    assert stack.all_running(state)


def test_a_testbed_with_jaeger_whose_jaeger_died_is_not(state: StateDir) -> None:
    stack.write_env(state, {"KUBECONFIG": "/k", jaeger.QUERY_URL: "http://127.0.0.1:1"})
    assert not stack.all_running(state)
