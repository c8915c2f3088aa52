"""Fixtures for the client library's e2e tests: an operator watching only the test's
namespace (as tests/e2e/lifecycle), and a scenario whose teardown scans everything the
operator said for credential values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from support.leaks import assert_no_leaks
from support.operator import OperatorProcess, operator_env, running_operator
from support.scenario import Scenario


@pytest.fixture
def operator(
    testbed_env: dict[str, str], namespace: str, crds: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    with running_operator(
        operator_env(testbed_env), tmp_path / "operator.log", "--namespace", namespace
    ) as op:
        yield op


@pytest.fixture
def scenario(
    kube: client.ApiClient, namespace: str, operator: OperatorProcess
) -> Iterator[Scenario]:
    scene = Scenario(kube, namespace)
    yield scene
    assert_no_leaks(scene, [operator])
