"""The Vault backend's one error mapping, and its pure checks (no server involved)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from hvac import exceptions as vault_exc
from requests.adapters import HTTPAdapter

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Lease,
    Session,
)
from agentcred.backends.vault import VaultBackend, vault_error
from agentcred.models.resolved import parse_resolved

URL = "http://vault.example:8200/v1/auth/kubernetes/login"
MULTI = "1 error occurred:\n\t* permission denied\n\n"


def hvac_error(cls: type[vault_exc.VaultError], *errors: str) -> vault_exc.VaultError:
    return cls(errors=list(errors) or None, method="post", url=URL)


@pytest.mark.parametrize(
    ("exc", "login", "expected", "text"),
    [
        (
            hvac_error(vault_exc.Forbidden, MULTI),
            False,
            BackendDenied,
            "reading x: permission denied",
        ),
        (hvac_error(vault_exc.Unauthorized, "missing client token"), False, BackendDenied, "token"),
        (
            hvac_error(vault_exc.InvalidPath),
            False,
            BackendNotFound,
            "Vault found nothing for reading x",
        ),
        (
            hvac_error(vault_exc.InvalidRequest, 'invalid role name "r"'),
            True,
            BackendDenied,
            "role",
        ),
        (
            hvac_error(vault_exc.InvalidRequest, "unknown field"),
            False,
            BackendInvalidConfig,
            "field",
        ),
        (hvac_error(vault_exc.InternalServerError, "boom"), False, BackendUnavailable, "boom"),
        (hvac_error(vault_exc.VaultDown, "Vault is sealed"), False, BackendUnavailable, "sealed"),
        (hvac_error(vault_exc.BadGateway), False, BackendUnavailable, "now"),
        (hvac_error(vault_exc.RateLimitExceeded, "rate"), False, BackendUnavailable, "rate"),
        (hvac_error(vault_exc.VaultNotInitialized), False, BackendUnavailable, "now"),
        (requests.ConnectionError("refused"), False, BackendUnavailable, "cannot reach Vault"),
        (requests.ConnectTimeout("slow"), False, BackendUnavailable, "slow"),
        (requests.ReadTimeout("slow"), False, BackendUnavailable, "slow"),
        (requests.exceptions.SSLError("bad cert"), False, BackendUnavailable, "bad cert"),
        (requests.exceptions.InvalidURL("bad url"), False, BackendInvalidConfig, "InvalidURL"),
        (hvac_error(vault_exc.ParamValidationError, "bad"), True, BackendInvalidConfig, "bad"),
    ],
)
def test_each_failure_maps_to_one_typed_error(
    exc: Exception, login: bool, expected: type[BackendError], text: str
) -> None:
    mapped = vault_error(exc, "reading x", login=login)
    assert type(mapped) is expected
    assert text in str(mapped)


def test_vaults_multierror_wrapping_is_flattened() -> None:
    mapped = vault_error(hvac_error(vault_exc.Forbidden, MULTI), "reading x")
    assert str(mapped) == "Vault denied reading x: permission denied"


def test_a_hint_is_added_to_refusals_only() -> None:
    denied = vault_error(hvac_error(vault_exc.Forbidden, "no"), "creating", hint=" (see docs)")
    assert str(denied).endswith("no (see docs)")
    down = vault_error(hvac_error(vault_exc.VaultDown, "no"), "creating", hint=" (see docs)")
    assert "see docs" not in str(down)


def test_an_error_without_text_gets_no_dangling_colon() -> None:
    mapped = vault_error(hvac_error(vault_exc.InvalidPath), "reading KV v2 secret/a")
    assert str(mapped) == "Vault found nothing for reading KV v2 secret/a"


def test_vaults_text_is_cut_at_300_characters() -> None:
    mapped = vault_error(hvac_error(vault_exc.InvalidRequest, "x" * 5000), "login", login=True)
    quoted = str(mapped).split(": ", 1)[1]
    assert len(quoted) == 300
    assert quoted.endswith("...")


@pytest.mark.parametrize(
    ("status", "expected"),
    [(405, BackendInvalidConfig), (409, BackendInvalidConfig), (504, BackendUnavailable)],
)
def test_statuses_hvac_has_no_class_for_split_on_4xx_and_5xx(
    status: int, expected: type[BackendError]
) -> None:
    exc = hvac_error(vault_exc.UnexpectedError, "unsupported operation")
    exc.status_code = status  # set by the backend's adapter on every error it raises
    mapped = vault_error(exc, "GET pki/issue/x")
    assert type(mapped) is expected
    assert f"HTTP {status}" in str(mapped)


def test_no_request_body_reaches_a_message() -> None:
    prepared = requests.Request("POST", URL, json={"jwt": "eyJ-secret-jwt"}).prepare()
    exc = requests.ConnectionError("connection refused", request=prepared)
    mapped = vault_error(exc, "the login")
    assert "eyJ-secret-jwt" not in str(mapped)
    assert "eyJ-secret-jwt" not in repr(mapped)


# -- through the backend: the original is chained, the message names the address ---------


class Refusing(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        raise requests.ConnectionError("connection refused", request=request)


class Answering(HTTPAdapter):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__()
        self.status, self.body = status, body

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = self.status
        response.headers["Content-Type"] = "application/json"
        response._content = self.body
        response.request, response.url = request, str(request.url)
        return response


def spec(address: str = "http://vault.example:8200", insecure: bool = True, **vault: Any) -> Any:
    block = {"auth": {"kubernetes": {"role": "r"}}, "dynamic": {"path": "db/creds/r"}, **vault}
    block["address"] = address
    return parse_resolved({"vault": block, "allowInsecureHTTP": insecure})


def test_the_sdk_error_is_chained_as_the_cause() -> None:
    backend = VaultBackend(transport=Refusing)
    try:
        with pytest.raises(BackendUnavailable, match=r"vault\.example") as caught:
            asyncio.run(backend.check(spec()))
    finally:
        asyncio.run(backend.aclose())
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_the_adapter_gives_the_mapping_statuses_hvac_has_no_class_for() -> None:
    backend = VaultBackend(transport=lambda: Answering(405, b'{"errors": ["unsupported"]}'))
    session = Session(ref="accessor", secret="hvs.token")
    try:
        with pytest.raises(BackendInvalidConfig, match=r"HTTP 405\): unsupported") as caught:
            asyncio.run(backend.revoke(Lease(spec(), "lease", session, "cid")))
    finally:
        asyncio.run(backend.aclose())
    assert isinstance(caught.value.__cause__, vault_exc.UnexpectedError)


def test_a_403_on_revoke_means_already_gone() -> None:
    backend = VaultBackend(transport=lambda: Answering(403, b'{"errors": ["permission denied"]}'))
    try:
        asyncio.run(backend.revoke(Lease(spec(), "lease", Session(ref="a", secret="hvs.x"), "cid")))
    finally:
        asyncio.run(backend.aclose())


# -- pure checks ----------------------------------------------------------------------------


def test_validate_refuses_plain_http_unless_the_backend_allows_it() -> None:
    VaultBackend().validate(spec(insecure=True))
    with pytest.raises(BackendInvalidConfig, match="allowInsecureHTTP"):
        VaultBackend().validate(spec(insecure=False))


@pytest.mark.parametrize(
    ("address", "where"),
    [
        ("vault.example:8200", "vault.address"),
        ("ftp://vault.example", "vault.address"),
        ("http://[x", "vault.address"),
    ],
)
def test_validate_wants_an_http_url(address: str, where: str) -> None:
    with pytest.raises(BackendInvalidConfig, match=where):
        VaultBackend().validate(spec(address=address))


def test_validate_refuses_credentials_in_the_address_without_echoing_them() -> None:
    with pytest.raises(BackendInvalidConfig) as caught:
        VaultBackend().validate(spec(address="https://me:hunter2@vault.example"))
    assert "hunter2" not in str(caught.value)


def test_capabilities_differ_for_dynamic_and_kv() -> None:
    backend = VaultBackend()
    dynamic = backend.capabilities(spec())
    kv = backend.capabilities(spec(dynamic=None, kv={"path": "a/b"}))
    assert (dynamic.renewable, dynamic.revocable, dynamic.static) == (True, True, False)
    assert (kv.renewable, kv.revocable, kv.static) == (False, False, True)
