"""Azure Key Vault through the official SDK against Lowkey Vault (opt-in: ``make test-azure``).

Not part of ``make test``: the Lowkey Vault app jar is not on the Maven Central these
machines reach. With ``LOWKEY_VAULT_JAR=/path/to/lowkey-vault-app.jar`` (or
``AGENTCRED_TESTBED_AZURE=1`` where Maven Central carries it) the testbed starts it and
this suite runs; without it, the suite fails loudly instead of skipping.
"""

from __future__ import annotations

import uuid

import pytest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- Azure Key Vault (Lowkey Vault) ---------------------------------------------------------


def test_azure_key_vault_set_then_get_over_verified_https(
    testbed_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "AZURE_KEYVAULT_URL" in testbed_env, (
        "no Azure Key Vault emulator: set LOWKEY_VAULT_JAR or AGENTCRED_TESTBED_AZURE=1 "
        "(see agentcred_testbed.lowkey)"
    )
    # The same credential class production uses; the testbed's token host stands in for IMDS.
    monkeypatch.setenv(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST", testbed_env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
    )
    with ManagedIdentityCredential() as credential:
        client = SecretClient(
            testbed_env["AZURE_KEYVAULT_URL"],
            credential,
            connection_verify=testbed_env["AZURE_CA_BUNDLE"],
            verify_challenge_resource=False,
            api_version=testbed_env["AZURE_KEYVAULT_API_VERSION"],
        )
        with client:
            name = _unique("llm-key")
            first = client.set_secret(name, "value-one")
            second = client.set_secret(name, "value-two")

            latest = client.get_secret(name)
            pinned = client.get_secret(name, first.properties.version)

    assert latest.value == "value-two"
    assert latest.properties.version == second.properties.version
    assert pinned.value == "value-one"
