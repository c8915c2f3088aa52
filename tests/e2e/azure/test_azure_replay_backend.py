"""The Azure Key Vault backend against real recorded Azure answers (support.azure_replay).

The backend runs as in production: the real ``azure-keyvault-secrets`` SDK inside,
``DefaultAzureCredential`` (its managed-identity step, pointed at the replay's token
endpoint by ``AZURE_POD_IDENTITY_AUTHORITY_HOST``), TLS verified against the replay's
CA, and the ``client_options`` the operator builds from ``AGENTCRED_AZURE_*`` (the
recordings' api-version, the CA bundle, the challenge-resource check off because the
vault is 127.0.0.1). Every request the SDK sends must be one Azure answered on the
recording day; the ``azure_replay`` fixture fails the test otherwise.

The second half proves that strictness: a request with another api-version, a version
nobody read, or the latest-version path without its trailing slash is not answered
from the recordings, and is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from recorded import (
    CRUD,
    CRUD_EXPIRES,
    CRUD_FIRST_VERSION,
    CRUD_ID,
    CRUD_VALUE,
    CRUD_VERSION,
    DISABLED,
    DISABLED_VALUE,
    JS_API_VERSION,
    MISSING,
    PLAIN,
    PLAIN_ID,
    PLAIN_VALUE,
    PYTHON_API_VERSION,
)

from agentcred.backends.azure_key_vault import AzureKeyVaultBackend
from agentcred.backends.base import (
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
)
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from support.azure_issue import issue
from support.azure_replay import AzureReplay

pytestmark = pytest.mark.e2e

Backends = Callable[..., AzureKeyVaultBackend]


@pytest.fixture
def backends(azure_replay: AzureReplay, managed_identity: None) -> Iterator[Backends]:
    """Builds backends configured as the operator configures them from AGENTCRED_AZURE_*."""
    made: list[AzureKeyVaultBackend] = []

    def make(api_version: str = PYTHON_API_VERSION) -> AzureKeyVaultBackend:
        options = BackendSettings(
            azure_verify_challenge_resource=False,
            azure_ca_bundle=str(azure_replay.ca_bundle),
            azure_api_version=api_version,
        ).azure_client_options()
        made.append(AzureKeyVaultBackend(concurrency=2, client_options=options))
        return made[-1]

    yield make
    for backend in made:
        asyncio.run(backend.aclose())


def spec(replay: AzureReplay, name: str, version: str | None = None) -> ResolvedCredential:
    block: dict[str, Any] = {"vaultUrl": replay.vault_url, "name": name}
    if version is not None:
        block["version"] = version
    return parse_resolved({"azureKeyVault": block})


# -- what the recordings say, through the backend --------------------------------------


def test_latest_version_is_the_recorded_value_after_the_recorded_challenge(
    azure_replay: AzureReplay, backends: Backends
) -> None:
    issued = issue(backends(), spec(azure_replay, CRUD))

    assert dict(issued.data) == {"value": CRUD_VALUE}
    assert issued.lease_id == CRUD_ID  # the recorded id, version included
    assert issued.expires_at == CRUD_EXPIRES  # the version's recorded exp becomes the expiry
    assert issued.renewable is False
    latest = f"/secrets/{CRUD}/"
    seen = [(e.key.method, e.key.path, e.authorized, e.status) for e in azure_replay.exchanges()]
    # The SDK's first request carried no token and got the recorded 401 challenge; it then
    # fetched a token from the replay's IMDS endpoint and got the recorded answer.
    assert seen == [("GET", latest, False, 401), ("GET", latest, True, 200)]


def test_a_secret_without_dates_has_no_expiry(
    azure_replay: AzureReplay, backends: Backends
) -> None:
    issued = issue(backends(), spec(azure_replay, PLAIN))

    assert dict(issued.data) == {"value": PLAIN_VALUE}
    assert issued.lease_id == PLAIN_ID
    assert issued.expires_at is None


def test_a_pinned_version_is_read_by_its_own_path(
    azure_replay: AzureReplay, backends: Backends
) -> None:
    issued = issue(backends(), spec(azure_replay, CRUD, CRUD_VERSION))

    assert dict(issued.data) == {"value": CRUD_VALUE}
    assert issued.lease_id == CRUD_ID
    assert azure_replay.served("GET", f"/secrets/{CRUD}/{CRUD_VERSION}") == 1
    assert azure_replay.served("GET", f"/secrets/{CRUD}/") == 0


def test_a_missing_secret_is_not_found(azure_replay: AzureReplay, backends: Backends) -> None:
    with pytest.raises(
        BackendNotFound, match=r"\(SecretNotFound\) A secret with \(name/id\) secret-th"
    ):
        issue(backends(), spec(azure_replay, MISSING))
    assert azure_replay.served("GET", f"/secrets/{MISSING}/", status=404) == 1


def test_a_disabled_secret_is_never_served(azure_replay: AzureReplay, backends: Backends) -> None:
    backend = backends(JS_API_VERSION)

    with pytest.raises(BackendInvalidConfig, match="will not serve a disabled secret") as caught:
        issue(backend, spec(azure_replay, DISABLED))
    assert f"reading secret {DISABLED}" in str(caught.value)
    assert DISABLED_VALUE not in str(caught.value)
    # The readiness check reads the same way, and refuses the same way.
    with pytest.raises(BackendInvalidConfig, match="disabled secret"):
        asyncio.run(backend.check(spec(azure_replay, DISABLED)))
    assert azure_replay.served("GET", f"/secrets/{DISABLED}/", status=403) == 2


def test_refresh_re_reads_the_vault(azure_replay: AzureReplay, backends: Backends) -> None:
    backend = backends()
    credential_spec = spec(azure_replay, CRUD)

    first = issue(backend, credential_spec)
    asyncio.run(backend.check(credential_spec))
    again = issue(backend, credential_spec)

    assert (again.data, again.lease_id) == (first.data, first.lease_id)
    # Every read reached the vault (nothing cached in the backend), with one challenge
    # for the shared client and its token reused.
    assert azure_replay.served("GET", f"/secrets/{CRUD}/") == 3
    assert [e.authorized for e in azure_replay.exchanges()].count(False) == 1


# -- strictness: breaking how we call Azure breaks the tests ----------------------------


def test_another_api_version_is_not_answered_from_the_recordings(
    azure_replay: AzureReplay, backends: Backends
) -> None:
    with pytest.raises(BackendUnavailable, match="UnrecordedRequest") as caught:
        issue(backends("7.6"), spec(azure_replay, CRUD))
    assert CRUD_VALUE not in str(caught.value)

    unmatched = azure_replay.take_unmatched()
    assert [u.request for u in unmatched] == [f"GET /secrets/{CRUD}/?api-version=7.6"]
    assert azure_replay.served("GET", f"/secrets/{CRUD}/") == 0


def test_a_version_nobody_read_is_not_made_up(
    azure_replay: AzureReplay, backends: Backends
) -> None:
    # The version exists in the recording (the first PUT created it) but was never read:
    # the replay has no answer for it, rather than inventing one.
    with pytest.raises(BackendUnavailable, match="UnrecordedRequest"):
        issue(backends(), spec(azure_replay, CRUD, CRUD_FIRST_VERSION))

    unmatched = azure_replay.take_unmatched()
    path = f"/secrets/{CRUD}/{CRUD_FIRST_VERSION}"
    assert [u.request for u in unmatched] == [f"GET {path}?api-version={PYTHON_API_VERSION}"]


def test_the_latest_path_without_its_trailing_slash_is_not_answered(
    azure_replay: AzureReplay, managed_identity: None
) -> None:
    # The same request the backend sends for "latest", but to /secrets/{name}: Key Vault
    # routes that to PUT/DELETE; the replay must not treat the two paths as one.
    with DefaultAzureCredential() as credential:
        client = SecretClient(
            azure_replay.vault_url,
            credential,
            api_version=PYTHON_API_VERSION,
            verify_challenge_resource=False,
            connection_verify=str(azure_replay.ca_bundle),
            retry_total=0,  # as the backend's clients: one request, one answer
        )
        with client:
            answer = client.send_request(
                HttpRequest("GET", f"/secrets/{CRUD}", params={"api-version": PYTHON_API_VERSION})
            )
            assert answer.status_code == 599
            assert answer.json()["error"]["code"] == "UnrecordedRequest"
            proper = client.get_secret(CRUD)  # and the proper path still works

    assert proper.value == CRUD_VALUE
    unmatched = azure_replay.take_unmatched()
    assert [u.request for u in unmatched] == [
        f"GET /secrets/{CRUD}?api-version={PYTHON_API_VERSION}"
    ]
