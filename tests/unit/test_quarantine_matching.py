"""Which tasks a CredentialQuarantine reaches (models/quarantine.py): any one target
matches; ServiceAccounts and AgentCredentials are namespace-qualified; an empty selector
matches nothing; the index answers with the first quarantine by name."""

from __future__ import annotations

from typing import Any

import pytest

from agentcred.models.errors import SpecError
from agentcred.models.quarantine import (
    Quarantine,
    QuarantineIndex,
    TaskSubject,
    ended_by,
    matches,
    parse_quarantine_spec,
)

TASK = TaskSubject(
    namespace="team-a",
    name="claim-4711",
    service_account="research-agent",
    credentials=("research-db",),
    labels={"agent": "researcher", "run": "7"},
    namespace_labels={"env": "prod"},
    backends=("vault-main",),
)


def spec(**targets: Any) -> Any:
    return parse_quarantine_spec({"reason": "leaked token", **targets})


@pytest.mark.parametrize(
    "targets",
    [
        {"namespaces": ["team-a"]},
        {"namespaces": ["team-b", "team-a"]},
        {"serviceAccounts": ["team-a/research-agent"]},
        {"agentCredentials": ["team-a/research-db"]},
        {"credentialBackends": ["vault-main"]},
        {"taskSelector": {"matchLabels": {"agent": "researcher"}}},
        {"taskSelector": {"matchExpressions": [{"key": "run", "operator": "In", "values": ["7"]}]}},
        {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
        {"namespaces": ["team-z"], "credentialBackends": ["vault-main"]},  # any one target
    ],
)
def test_a_task_matches_any_one_target(targets: dict[str, Any]) -> None:
    assert matches(spec(**targets), TASK)


@pytest.mark.parametrize(
    "targets",
    [
        {"namespaces": ["team-a-prod"]},  # names, not prefixes
        {"serviceAccounts": ["team-b/research-agent"]},  # the same name elsewhere
        {"serviceAccounts": ["research-agent"]},
        {"agentCredentials": ["team-b/research-db"]},
        {"credentialBackends": ["vault-other"]},
        {"taskSelector": {"matchLabels": {"agent": "writer"}}},
        {"taskSelector": {"matchLabels": {}}},  # empty: nothing, never everything
        {"namespaceSelector": {"matchLabels": {"env": "dev"}}},
        {"namespaceSelector": {"matchExpressions": []}},
    ],
)
def test_a_task_outside_every_target_does_not_match(targets: dict[str, Any]) -> None:
    assert not matches(spec(**targets), TASK)


def test_a_namespace_selector_never_matches_labels_not_looked_up() -> None:
    unknown = TaskSubject("team-a", "t", "sa", ("db",), namespace_labels=None)
    assert not matches(spec(namespaceSelector={"matchLabels": {"env": "prod"}}), unknown)


@pytest.mark.parametrize(
    "raw",
    [{"namespaces": ["team-a"]}, {"reason": "  ", "namespaces": ["a"]}, {"reason": "why"}],
)
def test_a_spec_without_reason_or_target_is_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        parse_quarantine_spec(raw)


def test_the_index_answers_with_the_first_matching_quarantine_by_name() -> None:
    index = QuarantineIndex()
    assert not index and index.first_match(TASK) is None
    index.put(Quarantine("zz", spec(namespaces=["team-a"])))
    index.put(Quarantine("aa", spec(credentialBackends=["vault-main"])))
    index.put(Quarantine("bb", spec(namespaces=["team-b"])))
    found = index.first_match(TASK)
    assert found is not None and found.name == "aa"
    assert found.message == "CredentialQuarantine aa: leaked token"
    assert index.needs_backends and not index.needs_namespace_labels
    index.remove("aa")
    assert (index.first_match(TASK) or Quarantine("-", spec(namespaces=["x"]))).name == "zz"


def test_a_task_ended_by_a_quarantine_is_recognised_by_its_name_only() -> None:
    message = "CredentialQuarantine q1: leaked token"
    assert ended_by("q1", "Quarantined", message)
    assert not ended_by("q", "Quarantined", message)
    assert not ended_by("q1", "Completed", message)
