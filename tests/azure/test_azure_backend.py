"""The Azure Key Vault backend against Lowkey Vault (opt-in: ``make test-azure``).

Not part of ``make test``: the Lowkey Vault app jar is not on the Maven Central these
machines reach (see agentcred_testbed.lowkey). With ``LOWKEY_VAULT_JAR`` set the
testbed starts it and this suite runs; without it, the suite fails loudly instead of
skipping.

The backend runs as in production: ``DefaultAzureCredential`` (its managed-identity
step, pointed at Lowkey's token endpoint by ``AZURE_POD_IDENTITY_AUTHORITY_HOST``),
TLS verified against the testbed's CA, and the ``client_options`` the operator builds
from ``AGENTCRED_AZURE_*`` (here: the CA bundle, the api version Lowkey serves, and
the challenge check off because the vault is not under ``*.vault.azure.net``).

Known difference: Key Vault answers a read of a disabled secret with 403
``SecretDisabled`` (``BackendInvalidConfig``); Lowkey Vault answers 404 (``BackendNotFound``).
Expired and not-yet-valid versions are served by both, and refused by the backend.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from agentcred.backends.azure_key_vault import AzureKeyVaultBackend
from agentcred.backends.base import (
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
)
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from support.azure_issue import issue


@pytest.fixture(scope="module")
def azure_env(testbed_env: dict[str, str]) -> dict[str, str]:
    assert "AZURE_KEYVAULT_URL" in testbed_env, (
        "no Azure Key Vault emulator: set LOWKEY_VAULT_JAR or AGENTCRED_TESTBED_AZURE=1 "
        "(see agentcred_testbed.lowkey)"
    )
    return testbed_env


@pytest.fixture
def identity_host(azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-identity's IMDS client asks Lowkey's token endpoint instead of 169.254.169.254."""
    host = azure_env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", host)


def registry_options(env: dict[str, str]) -> dict[str, Any]:
    """What the operator passes with AGENTCRED_AZURE_* set for this vault."""
    return BackendSettings(
        azure_verify_challenge_resource=False,
        azure_ca_bundle=env["AZURE_CA_BUNDLE"],
        azure_api_version=env["AZURE_KEYVAULT_API_VERSION"],
    ).azure_client_options()


@pytest.fixture
def admin(azure_env: dict[str, str], identity_host: None) -> Iterator[SecretClient]:
    with ManagedIdentityCredential() as credential:
        client = SecretClient(
            azure_env["AZURE_KEYVAULT_URL"],
            credential,
            connection_verify=azure_env["AZURE_CA_BUNDLE"],
            verify_challenge_resource=False,
            api_version=azure_env["AZURE_KEYVAULT_API_VERSION"],
        )
        with client:
            yield client


@pytest.fixture
def backend(azure_env: dict[str, str], identity_host: None) -> Iterator[AzureKeyVaultBackend]:
    akv = AzureKeyVaultBackend(concurrency=4, client_options=registry_options(azure_env))
    yield akv
    asyncio.run(akv.aclose())


def spec(env: dict[str, str], name: str, **block: Any) -> ResolvedCredential:
    kv = {"vaultUrl": env["AZURE_KEYVAULT_URL"], "name": name, **block}
    return parse_resolved({"azureKeyVault": kv})


def unique(prefix: str = "llm-key") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_values_versions_and_rotation(
    azure_env: dict[str, str], admin: SecretClient, backend: AzureKeyVaultBackend
) -> None:
    name = unique()
    first = admin.set_secret(name, json.dumps({"username": "agent", "port": 5432}))
    second = admin.set_secret(name, "sk-plain")

    latest = issue(backend, spec(azure_env, name))
    pinned = issue(backend, spec(azure_env, name, version=first.properties.version))

    assert dict(latest.data) == {"value": "sk-plain"}
    assert latest.lease_id == second.id
    assert latest.expires_at is None
    assert dict(pinned.data) == {"username": "agent", "port": "5432"}
    assert pinned.lease_id == first.id

    third = admin.set_secret(name, "sk-rotated")
    rotated = issue(backend, spec(azure_env, name))
    assert (rotated.data["value"], rotated.lease_id) == ("sk-rotated", third.id)
    asyncio.run(backend.check(spec(azure_env, name)))


def test_the_expiry_of_a_version_becomes_the_credentials(
    azure_env: dict[str, str], admin: SecretClient, backend: AzureKeyVaultBackend
) -> None:
    name = unique()
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).replace(
        microsecond=0
    )
    admin.set_secret(name, "sk-dated", expires_on=expires)

    assert issue(backend, spec(azure_env, name)).expires_at == expires


def test_disabled_expired_and_not_yet_valid_versions_are_never_served(
    azure_env: dict[str, str], admin: SecretClient, backend: AzureKeyVaultBackend
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    disabled, expired, early = unique("disabled"), unique("expired"), unique("early")
    admin.set_secret(disabled, "sk-disabled", enabled=False)
    admin.set_secret(expired, "sk-expired", expires_on=now + datetime.timedelta(seconds=2))
    admin.set_secret(early, "sk-early", not_before=now + datetime.timedelta(hours=1))
    time.sleep(3)  # let `expired` pass its expiry (Key Vault keeps serving it)

    with pytest.raises((BackendInvalidConfig, BackendNotFound), match="disabled") as caught:
        issue(backend, spec(azure_env, disabled))
    assert "sk-disabled" not in str(caught.value)
    with pytest.raises(BackendInvalidConfig, match="expired at") as caught:
        issue(backend, spec(azure_env, expired))
    assert "sk-expired" not in str(caught.value)
    with pytest.raises(BackendInvalidConfig, match="not valid before") as caught:
        issue(backend, spec(azure_env, early))
    assert "sk-early" not in str(caught.value)
    with pytest.raises(BackendInvalidConfig, match="expired at"):
        asyncio.run(backend.check(spec(azure_env, expired)))


def test_a_missing_secret_is_not_found(
    azure_env: dict[str, str], backend: AzureKeyVaultBackend
) -> None:
    with pytest.raises(BackendNotFound, match="Azure Key Vault found nothing"):
        issue(backend, spec(azure_env, unique("missing")))


def test_requests_ca_bundle_is_honoured_and_an_untrusted_vault_is_unavailable(
    azure_env: dict[str, str],
    admin: SecretClient,
    identity_host: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = unique()
    admin.set_secret(name, "sk-tls")
    options = {k: v for k, v in registry_options(azure_env).items() if k != "connection_verify"}

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    untrusting = AzureKeyVaultBackend(client_options=options)
    try:
        with pytest.raises(BackendUnavailable, match="cannot reach Azure Key Vault"):
            issue(untrusting, spec(azure_env, name))
    finally:
        asyncio.run(untrusting.aclose())

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azure_env["AZURE_CA_BUNDLE"])
    trusting = AzureKeyVaultBackend(client_options=options)
    try:
        assert issue(trusting, spec(azure_env, name)).data == {"value": "sk-tls"}
    finally:
        asyncio.run(trusting.aclose())


def test_a_vault_that_is_down_is_unavailable(
    azure_env: dict[str, str], backend: AzureKeyVaultBackend
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = parse_resolved(
        {"azureKeyVault": {"vaultUrl": f"https://127.0.0.1:{port}", "name": "llm-key"}}
    )
    with pytest.raises(BackendUnavailable, match="cannot reach Azure Key Vault"):
        issue(backend, down)
