"""The Azure Key Vault backend's error mapping and pure parts, with the SDK's own classes.

No Key Vault here (the opt-in tests/azure suite runs against Lowkey Vault): errors are
azure-core's exceptions built around real ``requests`` responses, secrets are the SDK's
``KeyVaultSecret``/``SecretProperties`` built the way the SDK builds them from a
response, and ``issue`` is driven with the SDK call replaced by one returning such a
secret.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core import exceptions as az_exc
from azure.core.pipeline.transport import HttpRequest, RequestsTransportResponse
from azure.identity import CredentialUnavailableError
from azure.keyvault.secrets import KeyVaultSecret, SecretProperties
from azure.keyvault.secrets._generated.models import SecretAttributes

from agentcred.backends import azure_key_vault as akv
from agentcred.backends.azure_key_vault import (
    DEFAULT_CLIENT_OPTIONS,
    AzureKeyVaultBackend,
    azure_error,
    unusable,
)
from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Identity,
    IssueRequest,
    Lease,
)
from agentcred.backends.instrumented import InstrumentedBackend
from agentcred.backends.registry import BackendRegistry
from agentcred.backends.settings import BackendSettings
from agentcred.handlers.startup import backend_settings
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from agentcred.settings import Settings, SettingsError, load

VAULT = "https://kv.vault.azure.net"
ACTION = f"reading secret llm-key (latest version) from {VAULT}"
NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
VALUE = "sk-live-never-in-a-message"


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    raw = requests.Response()
    raw.status_code, raw.reason, raw.url = status, "Reason", f"{VAULT}/secrets/llm-key"
    raw.headers.update({"Content-Type": "application/json", **(headers or {})})
    raw._content = json.dumps(body).encode() if body is not None else b""
    return RequestsTransportResponse(HttpRequest("GET", raw.url), raw)


def kv_error(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


DISABLED = kv_error(
    "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"
)
NO_ACCESS = kv_error("Forbidden", "Caller is not authorized to perform action", "ForbiddenByRbac")
MISSING = kv_error("SecretNotFound", "A secret with (name/id) llm-key was not found.")


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (
            az_exc.ResourceNotFoundError(response=response(404, MISSING)),
            BackendNotFound,
            "SecretNotFound",
        ),
        (
            az_exc.HttpResponseError(response=response(404, MISSING)),
            BackendNotFound,
            "was not found",
        ),
        (
            az_exc.HttpResponseError(response=response(403, DISABLED)),
            BackendInvalidConfig,
            "disabled",
        ),
        (
            az_exc.HttpResponseError(response=response(403, NO_ACCESS)),
            BackendDenied,
            "not authorized",
        ),
        (az_exc.HttpResponseError(response=response(401, {})), BackendDenied, "HTTP 401"),
        (az_exc.ClientAuthenticationError("token request failed"), BackendDenied, "token request"),
        (
            CredentialUnavailableError("no managed identity endpoint"),
            BackendDenied,
            "managed identity",
        ),
        (az_exc.HttpResponseError(response=response(429, {})), BackendUnavailable, "HTTP 429"),
        (az_exc.HttpResponseError(response=response(500, {})), BackendUnavailable, "now"),
        (az_exc.HttpResponseError(response=response(503, {})), BackendUnavailable, "now"),
        (
            az_exc.HttpResponseError(
                response=response(400, kv_error("BadParameter", "api-version"))
            ),
            BackendInvalidConfig,
            "BadParameter",
        ),
        (az_exc.HttpResponseError(response=response(409, {})), BackendInvalidConfig, "rejected"),
        (az_exc.ServiceRequestError("Connection refused"), BackendUnavailable, "cannot reach"),
        (az_exc.ServiceRequestTimeoutError("connect timeout"), BackendUnavailable, "timeout"),
        (az_exc.ServiceResponseError("connection reset"), BackendUnavailable, "reset"),
        (
            ValueError("challenge resource 'x' does not match"),
            BackendInvalidConfig,
            "does not match",
        ),
    ],
)
def test_each_failure_maps_to_one_typed_error(
    exc: Exception, expected: type[BackendError], text: str
) -> None:
    mapped = azure_error(exc, ACTION)
    assert type(mapped) is expected
    assert text in str(mapped)
    assert ACTION in str(mapped)


def test_a_disabled_secret_is_a_config_problem_not_a_refusal() -> None:
    mapped = azure_error(az_exc.HttpResponseError(response=response(403, DISABLED)), ACTION)
    assert str(mapped) == (
        f"Azure Key Vault will not serve a disabled secret for {ACTION}: (Forbidden) "
        "Operation get is not allowed on a disabled secret."
    )


def test_retry_after_is_kept() -> None:
    exc = az_exc.HttpResponseError(response=response(429, {}, {"Retry-After": "12"}))
    mapped = azure_error(exc, ACTION)
    assert isinstance(mapped, BackendUnavailable)
    assert mapped.retry_after == 12.0


def test_a_body_azure_core_cannot_parse_never_reaches_the_message() -> None:
    exc = az_exc.HttpResponseError(response=response(502, f"proxy echoed {VALUE}"))
    assert VALUE in str(exc)  # azure-core's own message quotes the body ...
    mapped = azure_error(exc, ACTION)
    assert VALUE not in str(mapped)  # ... ours does not
    assert "HTTP 502" in str(mapped)


def test_text_is_cut_at_300_characters() -> None:
    mapped = azure_error(az_exc.ClientAuthenticationError("x" * 5000), ACTION)
    quoted = str(mapped).split(": ", 1)[1]
    assert len(quoted) == 300
    assert quoted.endswith("...")


# -- never served: disabled, expired, not yet valid ------------------------------------------


def secret(
    value: str | None = VALUE,
    *,
    enabled: bool | None = True,
    expires: datetime.datetime | None = None,
    not_before: datetime.datetime | None = None,
    version: str = "0123456789abcdef0123456789abcdef",
) -> KeyVaultSecret:
    attributes = SecretAttributes(enabled=enabled, expires=expires, not_before=not_before)
    properties = SecretProperties(attributes, f"{VAULT}/secrets/llm-key/{version}")
    return KeyVaultSecret(properties, value)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"enabled": False}, "is disabled"),
        ({"expires": NOW - HOUR}, "expired at 2030-01-01T11:00:00+00:00"),
        ({"expires": NOW}, "expired at"),
        ({"not_before": NOW + HOUR}, "is not valid before 2030-01-01T13:00:00+00:00"),
        ({"enabled": False, "expires": NOW - HOUR}, "is disabled"),
    ],
)
def test_unusable_versions_are_named(kwargs: dict[str, Any], problem: str) -> None:
    found = unusable(secret(**kwargs).properties, NOW)
    assert found is not None
    assert found.startswith(problem)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"enabled": None},  # not said: Key Vault would have refused a disabled one itself
        {"expires": NOW + HOUR, "not_before": NOW - HOUR},
        {"not_before": NOW},
    ],
)
def test_valid_versions_are_served(kwargs: dict[str, Any]) -> None:
    assert unusable(secret(**kwargs).properties, NOW) is None


def test_naive_times_are_read_as_utc() -> None:
    naive = (NOW - HOUR).replace(tzinfo=None)
    assert unusable(secret(expires=naive).properties, NOW) is not None


# -- issue, with the SDK call replaced --------------------------------------------------------


def spec(**block: Any) -> ResolvedCredential:
    return parse_resolved({"azureKeyVault": {"vaultUrl": VAULT, "name": "llm-key", **block}})


def request(credential_spec: ResolvedCredential) -> IssueRequest:
    async def no_token(audience: str) -> str:
        raise AssertionError("the Azure backend uses the operator's identity")

    async def no_secret(name: str, key: str) -> str:
        raise AssertionError("the Azure backend reads no Kubernetes Secret")

    identity = Identity("team-a", "agent", "claim-4711", "uid", no_token, no_secret)
    return IssueRequest("llm", credential_spec, identity, datetime.timedelta(minutes=5), "cid")


def backend_returning(found: Any, asked: list[tuple[str, str, str | None]]) -> Any:
    backend = AzureKeyVaultBackend(concurrency=1)

    def get(vault_url: str, name: str, version: str | None) -> Any:
        asked.append((vault_url, name, version))
        if isinstance(found, BaseException):
            raise found
        return found

    backend._get = get  # type: ignore[method-assign]
    return backend


def issue(found: Any, credential_spec: ResolvedCredential | None = None) -> Any:
    asked: list[tuple[str, str, str | None]] = []
    backend = backend_returning(found, asked)
    try:
        return asyncio.run(backend.issue(request(credential_spec or spec()))), asked
    finally:
        asyncio.run(backend.aclose())


def test_a_plain_value_is_one_key_and_the_lease_is_the_versioned_id() -> None:
    expires = (datetime.datetime.now(datetime.UTC) + HOUR).replace(microsecond=0)  # epoch s
    issued, asked = issue(secret(expires=expires), spec(version="abc123", vaultUrl=VAULT + "/"))
    assert asked == [(VAULT, "llm-key", "abc123")]
    assert dict(issued.data) == {"value": VALUE}
    assert issued.lease_id == f"{VAULT}/secrets/llm-key/0123456789abcdef0123456789abcdef"
    assert issued.expires_at == expires  # the Secret goes when the value stops being valid
    assert not issued.renewable
    assert issued.session is None
    assert VALUE not in repr(issued)
    assert VALUE not in str(issued)


def test_a_json_object_becomes_keys() -> None:
    body = json.dumps({"username": "agent", "password": VALUE, "port": 5432})
    issued, _ = issue(secret(body))
    assert dict(issued.data) == {"username": "agent", "password": VALUE, "port": "5432"}
    assert issued.expires_at is None


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"enabled": False}, "is disabled"),
        ({"expires": datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)}, "expired at 2001"),
        ({"not_before": datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC)}, "not valid before"),
    ],
)
def test_unusable_versions_are_refused_without_their_value(
    kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(BackendInvalidConfig, match=problem) as caught:
        issue(secret(**kwargs))
    assert "llm-key/0123456789abcdef" in str(caught.value)
    assert VALUE not in str(caught.value)
    assert VALUE not in repr(caught.value)


def test_check_refuses_them_too() -> None:
    backend = backend_returning(secret(enabled=False), [])
    try:
        with pytest.raises(BackendInvalidConfig, match="is disabled"):
            asyncio.run(backend.check(spec()))
    finally:
        asyncio.run(backend.aclose())


def test_sdk_failures_are_mapped_and_chained() -> None:
    with pytest.raises(BackendDenied, match="llm-key") as caught:
        issue(az_exc.HttpResponseError(response=response(403, NO_ACCESS)))
    assert isinstance(caught.value.__cause__, az_exc.HttpResponseError)


def test_renew_is_refused_and_revoke_does_nothing() -> None:
    backend = AzureKeyVaultBackend()
    caps = backend.capabilities(spec())
    assert (caps.renewable, caps.revocable, caps.static) == (False, False, True)
    with pytest.raises(BackendInvalidConfig, match="renewed"):
        asyncio.run(backend.renew(Lease(spec(), "id", None, "c"), datetime.timedelta(minutes=5)))
    assert asyncio.run(backend.revoke(Lease(spec(), "id", None, "c"))) is None
    asyncio.run(backend.aclose())


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({"vaultUrl": "http://kv.vault.azure.net"}, "vaultUrl"),
        ({"vaultUrl": "kv.vault.azure.net"}, "vaultUrl"),
        ({"vaultUrl": "https://me:hunter2@kv.vault.azure.net"}, "vaultUrl"),
        ({"vaultUrl": "https://kv.vault.azure.net/secrets/x"}, "vaultUrl"),
        ({"vaultUrl": "https://kv.vault.azure.net:99999"}, "vaultUrl"),
        ({"name": "bad_name"}, "name"),
        ({"version": "a/b"}, "version"),
    ],
)
def test_validate_refuses_bad_blocks(block: dict[str, str], where: str) -> None:
    with pytest.raises(BackendInvalidConfig, match=f"spec.azureKeyVault.{where}") as caught:
        AzureKeyVaultBackend().validate(spec(**block))
    assert "hunter2" not in str(caught.value)


def test_validate_accepts_what_the_crd_accepts() -> None:
    backend = AzureKeyVaultBackend()
    backend.validate(spec())
    backend.validate(spec(vaultUrl="https://127.0.0.1:8443/", version="0123abcd"))


# -- client options, from the operator's settings ---------------------------------------------


def test_client_options_default_to_no_sdk_retries_and_short_timeouts() -> None:
    backend = AzureKeyVaultBackend()
    assert backend.client_options == {
        "retry_total": 0,
        "connection_timeout": 10,
        "read_timeout": 30,
    }
    asyncio.run(backend.aclose())


def test_given_client_options_reach_the_secret_client() -> None:
    options = {"verify_challenge_resource": False, "api_version": "7.6", "read_timeout": 5}
    backend = AzureKeyVaultBackend(client_options=options, credential_factory=object)
    try:
        assert backend.client_options["read_timeout"] == 5
        assert backend.client_options["retry_total"] == 0
        client = backend._client(VAULT)
        assert client.api_version == "7.6"
        assert backend._client(VAULT) is client
    finally:
        asyncio.run(backend.aclose())


def test_settings_feed_the_registrys_azure_options(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load(
        {
            "AGENTCRED_AZURE_VERIFY_CHALLENGE_RESOURCE": "false",
            "AGENTCRED_AZURE_CA_BUNDLE": str(bundle),
            "AGENTCRED_AZURE_API_VERSION": "7.6",
        }
    )
    registry = BackendRegistry(backend_settings(settings))
    assert registry.settings.azure_client_options() == {
        "verify_challenge_resource": False,
        "connection_verify": str(bundle),
        "api_version": "7.6",
    }
    assert registry.for_kind("azureKeyVault").kind == "azureKeyVault"
    built = registry.for_kind("azureKeyVault")
    assert isinstance(built, InstrumentedBackend)
    assert isinstance(built.inner, AzureKeyVaultBackend)
    assert built.inner.client_options == {
        **DEFAULT_CLIENT_OPTIONS,
        **registry.settings.azure_client_options(),
    }
    asyncio.run(registry.aclose())


def test_by_default_the_sdk_defaults_stand() -> None:
    settings = load({})
    assert settings == Settings()
    assert settings.azure_verify_challenge_resource is True
    assert backend_settings(settings).azure_client_options() == {}
    assert BackendSettings().azure_client_options() == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AGENTCRED_AZURE_VERIFY_CHALLENGE_RESOURCE": "maybe"}, "expected true or false"),
        ({"AGENTCRED_AZURE_CA_BUNDLE": "/nonexistent/ca.pem"}, "not a readable file"),
    ],
)
def test_bad_azure_settings_fail_fast_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=f"{next(iter(env))}.*{message}"):
        load(env)


def test_the_module_reads_no_environment_of_its_own() -> None:
    source = Path(akv.__file__).read_text()
    assert "os.environ" not in source
    assert "getenv" not in source
