"""The operator's typed memo: built by the CLI with the settings, filled by the startup
handler, shared by every resource's copy, emptied by the cleanup handler."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from agentcred import cli
from agentcred.backends.instrumented import InstrumentedBackend
from agentcred.backends.registry import BackendRegistry
from agentcred.handlers import OperatorMemo, startup
from agentcred.handlers.filters import served
from agentcred.services.deps import Deps
from agentcred.settings import Settings
from tests.support.fake_backend import FakeBackend


class FakeApi:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def test_the_cli_hands_the_settings_to_kopf_in_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(cli.kopf, "operator", operator)
    config = Settings(namespaces=("team-a",))
    asyncio.run(cli._operator(config))
    memo = seen["memo"]
    assert isinstance(memo, OperatorMemo)
    assert memo.settings is config
    assert seen["namespaces"] == ("team-a",)


def test_deps_exist_only_once_startup_ran_and_every_copy_shares_them() -> None:
    memo = OperatorMemo(settings=Settings())
    with pytest.raises(RuntimeError, match="startup"):
        _ = memo.deps
    memo.started = Deps(api=FakeApi(), backends=BackendRegistry(), settings=memo.settings)
    resource_memo = copy.copy(memo)  # what Kopf gives each resource (made after startup)
    assert resource_memo is memo  # one memo for every resource: no copy per object
    assert resource_memo.deps is memo.deps
    assert resource_memo.stop is memo.stop
    assert resource_memo.watchers is memo.watchers


def test_the_namespace_filter_reads_the_settings_from_the_memo() -> None:
    memo = OperatorMemo(settings=Settings(namespace="agentcred-system", namespaces=("team-a",)))
    assert served("team-a", memo)
    assert not served("team-b", memo)
    assert not served("agentcred-system", memo)
    assert not served("kube-system", memo)
    assert served(None, memo)


def test_shutdown_stops_the_loops_and_closes_backends_and_api() -> None:
    async def scenario() -> tuple[OperatorMemo, FakeApi, FakeBackend, asyncio.Task[None]]:
        memo = OperatorMemo(settings=Settings())
        api = FakeApi()
        registry = BackendRegistry()
        registry.register("fake", FakeBackend.from_settings)
        backend = registry.for_kind("fake")
        memo.started = Deps(api=api, backends=registry, settings=memo.settings)

        async def loop() -> None:
            await memo.stop.wait()

        watcher = asyncio.create_task(loop())
        memo.watchers.append(watcher)
        await startup.shutdown(memo=memo)
        await asyncio.gather(watcher, return_exceptions=True)
        assert isinstance(backend, InstrumentedBackend)
        assert isinstance(backend.inner, FakeBackend)
        return memo, api, backend.inner, watcher

    memo, api, backend, watcher = asyncio.run(scenario())
    assert memo.stop.is_set()
    assert watcher.done()
    assert api.closed == 1
    assert backend.closed == 1
