"""The registry: a table of kinds, built lazily from settings, wrapped, and closed at shutdown."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from agentcred.backends.base import Backend, BackendInvalidConfig, Lease, Session
from agentcred.backends.instrumented import InstrumentedBackend, instrument
from agentcred.backends.registry import FACTORIES, BackendRegistry, load_factory
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from tests.support.fake_backend import FakeBackend

FAKE = "tests.support.fake_backend:FakeBackend.from_settings"


def a_spec() -> ResolvedCredential:
    block = {"auth": {"kubernetes": {"role": "r"}}, "dynamic": {"path": "db/creds/r"}}
    return parse_resolved({"vault": {"address": "https://vault.example:8200", **block}})


def built(backend: Backend) -> FakeBackend:
    assert isinstance(backend, InstrumentedBackend)
    assert isinstance(backend.inner, FakeBackend)
    return backend.inner


def test_every_kind_of_the_table_names_a_factory_taking_the_settings() -> None:
    assert set(FACTORIES) == {
        "vault",
        "awsSecretsManager",
        "awsSts",
        "gcpSecretManager",
        "azureKeyVault",
    }
    for path in FACTORIES.values():
        assert callable(load_factory(path))


def test_a_registered_kind_is_built_once_from_the_settings_and_wrapped() -> None:
    settings = BackendSettings(concurrency=3, cache_size=5, timeout=7.0)
    registry = BackendRegistry(settings)
    registry.register("fake", FAKE)
    backend = registry.for_kind("fake")
    assert registry.for_kind("fake") is backend
    assert built(backend).settings is settings
    assert backend.kind == "fake"


def test_an_unknown_kind_is_invalid_config() -> None:
    with pytest.raises(BackendInvalidConfig, match="'nope' is not available"):
        BackendRegistry().for_kind("nope")


def test_aclose_closes_every_built_backend_once_and_is_idempotent() -> None:
    registry = BackendRegistry()
    registry.register("fake", FAKE)
    registry.register("other", FakeBackend.from_settings)
    fake, other = built(registry.for_kind("fake")), built(registry.for_kind("other"))
    asyncio.run(registry.aclose())
    assert (fake.closed, other.closed) == (1, 1)
    asyncio.run(registry.aclose())
    assert (fake.closed, other.closed) == (1, 1)


def test_aclose_goes_on_when_one_backend_fails_to_close() -> None:
    class Failing(FakeBackend):
        async def aclose(self) -> None:
            raise RuntimeError("stuck")

    registry = BackendRegistry()
    registry.register("failing", Failing)
    registry.register("fake", FAKE)
    registry.for_kind("failing")
    fake = built(registry.for_kind("fake"))
    asyncio.run(registry.aclose())
    assert fake.closed == 1


def test_the_wrapper_forwards_renew_revoke_and_aclose() -> None:
    inner = FakeBackend(BackendSettings())
    wrapped = instrument(inner)
    spec = a_spec()
    lease = Lease(spec, "fake/1", None, "cid")
    ttl = datetime.timedelta(minutes=5)
    asyncio.run(wrapped.renew(lease, ttl))
    asyncio.run(wrapped.revoke(lease))
    asyncio.run(wrapped.aclose())
    assert inner.renewed == [(lease, ttl)]
    assert inner.revoked == [lease]
    assert inner.closed == 1


def test_a_lease_is_frozen_and_keeps_its_session_out_of_repr() -> None:
    lease = Lease(a_spec(), "id", Session(ref="accessor", secret="hvs.secret"), "cid")
    with pytest.raises(AttributeError):
        lease.lease_id = "other"  # type: ignore[misc]
    assert "hvs.secret" not in repr(lease)
