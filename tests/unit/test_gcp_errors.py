"""The GCP Secret Manager backend's one error mapping, and its pure parts (no server).

The e2e suite (tests/e2e/backends/test_gcp_backend.py) runs the same backend against
drongo; here are the failures drongo cannot produce (403, 429, 5xx, gRPC, ADC) and the
rules that need no server: which credentials an endpoint gets, payload to fields, CRC32C.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from typing import Any

import grpc
import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from agentcred.backends import gcp_secret_manager as gcp
from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Lease,
)
from agentcred.backends.gcp_secret_manager import GcpSecretManagerBackend, crc32c, gcp_error
from agentcred.backends.registry import BackendRegistry
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential, parse_resolved

ACTION = "accessing projects/p/secrets/s/versions/latest"
REST_TEXT = (
    "GET http://127.0.0.1:1/v1/projects/p/secrets/s/versions/2:access?%24alt=json: "
    "Cannot access secret version in state DISABLED."
)


def spec(**block: Any) -> ResolvedCredential:
    return parse_resolved({"gcpSecretManager": {"project": "p", "secret": "s", **block}})


class Failing(grpc.RpcError):  # type: ignore[misc]  # grpcio ships no type hints
    def details(self) -> str:
        return "socket closed"


def http_error(cls: type[gexc.GoogleAPICallError], headers: dict[str, str]) -> Any:
    response = requests.Response()
    response.status_code = cls.code or 500
    response.headers.update(headers)
    return cls("slow down", response=response)


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (
            gexc.NotFound("Secret [projects/p/secrets/s] not found."),
            BackendNotFound,
            "found nothing",
        ),
        (
            gexc.PermissionDenied("Permission denied on resource"),
            BackendDenied,
            "Permission denied",
        ),
        (gexc.Forbidden("403 from REST"), BackendDenied, "403 from REST"),
        (
            gexc.Unauthenticated("Request had invalid credentials"),
            BackendDenied,
            "invalid credentials",
        ),
        (gexc.Unauthorized("401 from REST"), BackendDenied, "401 from REST"),
        (gexc.FailedPrecondition("version is in DISABLED state"), BackendInvalidConfig, "DISABLED"),
        (gexc.BadRequest(REST_TEXT), BackendInvalidConfig, "refused accessing"),
        (gexc.InvalidArgument("bad name"), BackendInvalidConfig, "bad name"),
        (gexc.MethodNotImplemented("no such RPC"), BackendInvalidConfig, "does not implement"),
        (gexc.Conflict("conflict"), BackendInvalidConfig, "rejected"),
        (gexc.ServiceUnavailable("try later"), BackendUnavailable, "try later"),
        (gexc.DeadlineExceeded("took too long"), BackendUnavailable, "took too long"),
        (gexc.InternalServerError("boom"), BackendUnavailable, "boom"),
        (gexc.TooManyRequests("quota"), BackendUnavailable, "quota"),
        (gexc.ResourceExhausted("quota"), BackendUnavailable, "quota"),
        (gexc.Aborted("aborted"), BackendUnavailable, "aborted"),
        (gexc.RetryError("Deadline exceeded", cause=None), BackendUnavailable, "Deadline exceeded"),
        (requests.ConnectionError("Connection refused"), BackendUnavailable, "cannot reach"),
        (requests.ReadTimeout("read timed out"), BackendUnavailable, "read timed out"),
        (
            requests.exceptions.SSLError("certificate verify failed"),
            BackendUnavailable,
            "certificate",
        ),
        (Failing(), BackendUnavailable, "socket closed"),
        (
            auth_exc.DefaultCredentialsError("not found"),
            BackendInvalidConfig,
            "Application Default",
        ),
        (auth_exc.TransportError("metadata unreachable"), BackendUnavailable, "access token"),
        (auth_exc.RefreshError("invalid_grant"), BackendDenied, "invalid_grant"),
        (auth_exc.RefreshError("try again", retryable=True), BackendUnavailable, "try again"),
        (ValueError("odd"), BackendInvalidConfig, "ValueError: odd"),
    ],
)
def test_each_failure_maps_to_one_typed_error(
    exc: Exception, expected: type[BackendError], text: str
) -> None:
    mapped = gcp_error(exc, ACTION)
    assert type(mapped) is expected
    assert text in str(mapped)
    assert ACTION in str(mapped)


def test_the_rest_method_and_url_prefix_is_dropped() -> None:
    mapped = gcp_error(gexc.BadRequest(REST_TEXT), ACTION)
    assert str(mapped) == (
        f"GCP Secret Manager refused {ACTION}: Cannot access secret version in state DISABLED."
    )


def test_a_hint_is_added_to_refusals_only() -> None:
    denied = gcp_error(gexc.PermissionDenied("no"), "reading x", hint=" (see docs)")
    assert str(denied).endswith("no (see docs)")
    down = gcp_error(gexc.ServiceUnavailable("no"), "reading x", hint=" (see docs)")
    assert "see docs" not in str(down)


def test_server_text_is_cut_at_300_characters() -> None:
    mapped = gcp_error(gexc.InvalidArgument("x" * 5000), ACTION)
    quoted = str(mapped).split(": ", 1)[1]
    assert len(quoted) == 300
    assert quoted.endswith("...")


def test_retry_after_of_a_rest_answer_is_kept() -> None:
    mapped = gcp_error(http_error(gexc.TooManyRequests, {"Retry-After": "7"}), ACTION)
    assert isinstance(mapped, BackendUnavailable)
    assert mapped.retry_after == 7.0
    dated = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    mapped = gcp_error(http_error(gexc.ServiceUnavailable, dated), ACTION)
    assert isinstance(mapped, BackendUnavailable)
    assert mapped.retry_after is None


def test_the_sdk_error_is_chained_as_the_cause() -> None:
    backend = GcpSecretManagerBackend(concurrency=1, timeout=2)

    def refuse(client: Any, name: str, *, timeout: float) -> Any:
        raise gexc.PermissionDenied("Permission 'secretmanager.secrets.get' denied")

    try:
        endpoint = gcp._endpoint("rest", "http://127.0.0.1:1", "e")
        with pytest.raises(BackendDenied, match=r"secretmanager\.viewer") as caught:
            asyncio.run(backend._call(endpoint, "reading x", refuse, "n", hint=gcp.METADATA_HINT))
    finally:
        asyncio.run(backend.aclose())
    assert isinstance(caught.value.__cause__, gexc.PermissionDenied)


# -- credentials: ADC, except on a plaintext endpoint ----------------------------------------


def test_a_plain_http_endpoint_gets_anonymous_credentials_and_never_asks_for_adc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_adc(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("ADC must not be looked up for a plaintext endpoint")

    monkeypatch.setattr("google.auth.default", no_adc)
    client = gcp._build_client(gcp._endpoint("rest", "http://127.0.0.1:8085", "e"))
    try:
        assert isinstance(client.transport._credentials, AnonymousCredentials)
        assert client.transport._host == "http://127.0.0.1:8085"
    finally:
        client.transport.close()
    client = gcp._build_client(gcp._endpoint("grpc", "http://127.0.0.1:8085", "e"))
    client.transport.close()  # a plaintext channel: no credentials at all


@pytest.mark.parametrize(
    ("transport", "endpoint"),
    [
        ("rest", "https://europe-west1-secretmanager.googleapis.com:8443"),
        ("grpc", None),
        ("rest", None),
    ],
)
def test_other_endpoints_use_adc_and_fail_clearly_without_it(
    monkeypatch: pytest.MonkeyPatch, transport: str, endpoint: str | None
) -> None:
    asked: list[Any] = []

    def no_adc(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs)
        raise auth_exc.DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr("google.auth.default", no_adc)
    backend = GcpSecretManagerBackend(concurrency=1)
    try:
        with pytest.raises(BackendInvalidConfig, match="Workload Identity"):
            asyncio.run(backend.check(spec(transport=transport, endpoint=endpoint)))
    finally:
        asyncio.run(backend.aclose())
    assert asked, "the library's ADC lookup was used"


def test_clients_are_shared_per_transport_and_endpoint() -> None:
    backend = GcpSecretManagerBackend(concurrency=1)
    try:
        first = backend._client(gcp._endpoint("rest", "http://127.0.0.1:1/", "e"))
        again = backend._client(gcp._endpoint("rest", "http://127.0.0.1:1", "e"))
        other = backend._client(gcp._endpoint("grpc", "http://127.0.0.1:1", "e"))
        assert first is again
        assert other is not first
    finally:
        asyncio.run(backend.aclose())


# -- endpoints and validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "raw", "target", "plaintext"),
    [
        (
            "grpc",
            "https://secretmanager.p.googleapis.com",
            "secretmanager.p.googleapis.com:443",
            False,
        ),
        ("grpc", "http://127.0.0.1:8085/", "127.0.0.1:8085", True),
        ("grpc", "http://[::1]:8085", "[::1]:8085", True),
        ("grpc", "http://emulator", "emulator:80", True),
        ("rest", "http://127.0.0.1:8085/", "", True),
    ],
)
def test_endpoints_become_grpc_targets_or_rest_urls(
    transport: str, raw: str, target: str, plaintext: bool
) -> None:
    endpoint = gcp._endpoint(transport, raw, "e")
    assert endpoint.target == target
    assert endpoint.plaintext is plaintext
    if transport == "rest":
        assert endpoint.url == raw.rstrip("/")


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({"version": "0"}, "version"),
        ({"version": "latest/1"}, "version"),
        ({"version": "v1"}, "version"),
        ({"secret": "bad name"}, "secret"),
        ({"project": "a/b"}, "project"),
        ({"transport": "http"}, "transport"),
        ({"endpoint": "secretmanager.googleapis.com"}, "endpoint"),
        ({"endpoint": "https://me:hunter2@example"}, "endpoint"),
        ({"endpoint": "https://example?x=1"}, "endpoint"),
        ({"endpoint": "https://x.googleapis.com:99999"}, "endpoint"),
        ({"endpoint": "https://x.googleapis.com/path", "transport": "grpc"}, "endpoint"),
    ],
)
def test_validate_refuses_bad_blocks_without_echoing_credentials(
    block: dict[str, str], where: str
) -> None:
    with pytest.raises(BackendInvalidConfig, match=f"spec.gcpSecretManager.{where}") as caught:
        GcpSecretManagerBackend().validate(spec(**block))
    assert "hunter2" not in str(caught.value)


def test_validate_accepts_what_the_crd_accepts() -> None:
    backend = GcpSecretManagerBackend()
    backend.validate(spec())
    backend.validate(
        spec(version="42", transport="rest", endpoint="https://secretmanager.googleapis.com/api")
    )
    backend.validate(spec(project="example.com:legacy", transport="grpc"))
    with pytest.raises(BackendInvalidConfig, match="not a GCP"):
        backend.validate(parse_resolved({"azureKeyVault": {"vaultUrl": "x", "name": "n"}}))


def test_static_capabilities_refused_renew_and_no_op_revoke() -> None:
    backend = GcpSecretManagerBackend()
    caps = backend.capabilities(spec())
    assert (caps.renewable, caps.revocable, caps.static) == (False, False, True)
    with pytest.raises(BackendInvalidConfig, match="renewed"):
        asyncio.run(backend.renew(Lease(spec(), "v", None, "c"), datetime.timedelta(minutes=5)))
    assert asyncio.run(backend.revoke(Lease(spec(), "v", None, "c"))) is None
    asyncio.run(backend.aclose())


def test_the_registry_builds_it_once() -> None:
    registry = BackendRegistry(BackendSettings(concurrency=2))
    assert registry.for_kind("gcpSecretManager").kind == "gcpSecretManager"
    assert registry.for_spec(spec()) is registry.for_kind("gcpSecretManager")


# -- payloads ------------------------------------------------------------------------------


def response(data: bytes, crc: int | None = None) -> Any:
    payload: dict[str, Any] = {"data": data}
    if crc is not None:
        payload["data_crc32c"] = crc
    return secretmanager.AccessSecretVersionResponse(
        name="projects/p/secrets/s/versions/3", payload=payload
    )


def test_crc32c_is_castagnoli() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0


def test_a_json_object_becomes_keys_and_other_values_json_text() -> None:
    body = json.dumps({"username": "u", "port": 5432, "tls": True, "opts": {"a": 1}}).encode()
    fields = gcp._payload(response(body, crc32c(body)), "src")
    assert fields == {"username": "u", "port": "5432", "tls": "true", "opts": '{"a": 1}'}


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"sk-plain", "sk-plain"),
        (b'"a json string"', '"a json string"'),
        (b"[1, 2]", "[1, 2]"),
        (b"{not json", "{not json"),
        (b"", ""),
        ("pässwörd".encode(), "pässwörd"),
    ],
)
def test_anything_else_is_one_value_key(data: bytes, value: str) -> None:
    assert gcp._payload(response(data), "src") == {"value": value}


def test_bytes_that_are_not_utf8_are_served_as_base64() -> None:
    data = b"\xff\xfe\x00binary"
    assert gcp._payload(response(data), "src") == {"value": base64.b64encode(data).decode()}


def test_an_empty_json_object_is_refused() -> None:
    with pytest.raises(BackendInvalidConfig, match="empty JSON object"):
        gcp._payload(response(b"{}"), "src")


def test_a_checksum_mismatch_is_retryable_and_names_no_value() -> None:
    data = b"sk-live-not-for-logs"
    with pytest.raises(BackendUnavailable, match="CRC32C") as caught:
        gcp._payload(response(data, crc32c(data) ^ 1), "src")
    assert "sk-live" not in str(caught.value)
    assert gcp._payload(response(data, crc32c(data)), "src") == {"value": data.decode()}


@pytest.mark.parametrize("endpoint", ["https://evil.example", "https://googleapis.com.evil.io"])
def test_the_operators_google_token_is_never_sent_outside_google_apis(endpoint: str) -> None:
    backend = GcpSecretManagerBackend()
    spec = parse_resolved(
        {"gcpSecretManager": {"project": "p", "secret": "s", "endpoint": endpoint}}
    )
    with pytest.raises(BackendInvalidConfig, match=r"googleapis\.com"):
        backend.validate(spec)
