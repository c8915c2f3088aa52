"""Fixtures of the Azure Key Vault tests: a strict replay of real recorded Azure answers.

``azure_replay`` starts the replay (vault + token endpoint, see support.azure_replay)
for one test and, at teardown, fails the test if any request reached it that nothing
was recorded for: an unrecorded request is a bug in how we call Azure. Tests that
provoke one on purpose take it with ``take_unmatched()`` after asserting on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.keyvault.secrets._shared import http_challenge_cache

from support.azure_replay import AzureReplay


@pytest.fixture
def azure_replay(tmp_path: Path) -> Iterator[AzureReplay]:
    # The SDK caches each vault's challenge process-wide, keyed by host:port, and a later
    # test's replay may get a port an earlier one had: start every test from a cold cache
    # so that each one sees (and the replay serves) the challenge.
    http_challenge_cache.clear()
    replay = AzureReplay(tmp_path / "azure-replay").start()
    try:
        yield replay
    finally:
        replay.stop()
        http_challenge_cache.clear()
    unmatched = replay.unmatched()
    assert not unmatched, "requests nothing was recorded for:\n" + "\n".join(map(str, unmatched))


@pytest.fixture
def managed_identity(azure_replay: AzureReplay, monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-identity's IMDS client (DefaultAzureCredential's managed identity) asks the
    replay's token endpoint instead of 169.254.169.254."""
    for name, value in azure_replay.identity_env().items():
        monkeypatch.setenv(name, value)
