"""Operator settings: which namespaces are served, and clear errors for bad values."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from agentcred.models import names
from agentcred.settings import SettingsError, load


def test_system_namespaces_and_the_operators_own_are_never_served() -> None:
    settings = load({"AGENTCRED_NAMESPACE": "agentcred-system"})
    for namespace in ("kube-system", "kube-public", "kube-node-lease", "agentcred-system"):
        assert not settings.serves(namespace)
    assert settings.serves("team-a")


def test_a_namespaced_install_serves_only_its_namespaces() -> None:
    settings = load({"AGENTCRED_NAMESPACES": "team-a, team-b"})
    assert settings.serves("team-a") and settings.serves("team-b")
    assert not settings.serves("team-c")


def test_exclusions_can_be_replaced_or_dropped() -> None:
    assert load({"AGENTCRED_EXCLUDE_NAMESPACES": "none"}).serves("kube-system")
    custom = load({"AGENTCRED_EXCLUDE_NAMESPACES": "sandbox"})
    assert not custom.serves("sandbox") and custom.serves("kube-system")


def test_fairness_and_timeouts_are_read_and_checked() -> None:
    settings = load(
        {
            "AGENTCRED_BACKEND_TARGET_CONCURRENCY": "3",
            "AGENTCRED_NAMESPACE_CONCURRENCY": "2",
            "AGENTCRED_BACKEND_TIMEOUT": "7s",
            "AGENTCRED_CLIENT_CACHE_SIZE": "5",
            "AGENTCRED_RESTORE_INTERVAL": "2s",
        }
    )
    assert settings.restore_interval == timedelta(seconds=2)
    assert load({}).restore_interval == timedelta(seconds=30)
    assert (settings.target_concurrency, settings.namespace_concurrency) == (3, 2)
    assert settings.backend_timeout == timedelta(seconds=7)
    assert settings.client_cache_size == 5
    with pytest.raises(SettingsError, match="AGENTCRED_BACKEND_TIMEOUT"):
        load({"AGENTCRED_BACKEND_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match="AGENTCRED_NAMESPACE_CONCURRENCY"):
        load({"AGENTCRED_NAMESPACE_CONCURRENCY": "0"})


LABEL = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


@pytest.mark.parametrize("task", ["a" * 253, ("ab-" * 90)[:253].rstrip("-"), "x.y-" * 60 + "z"])
def test_long_task_names_give_valid_secret_names_and_label_values(task: str) -> None:
    name = names.secret_name(task, "research-db")
    assert len(name) <= 253 and name.endswith("-research-db")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name)
    assert names.secret_name(task, "research-db") == name  # deterministic
    label = names.label_value(task)
    assert len(label) <= 63 and re.fullmatch(LABEL, label)
    assert names.label_value("short") == "short"
    assert names.secret_name("t", "c") == "t-c"
