"""translate: every client-library failure becomes one of our errors, naming the object only."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from multidict import CIMultiDict, CIMultiDictProxy

from agentcred import metrics
from agentcred.backends.base import BackendError, BackendNotFound, BackendUnavailable
from agentcred.kube.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeGone,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
    translate,
)

WHAT = "Secret team-a/claim-db"
LEAK = "s3cr3t-value"


def api_error(status: int, reason: str = "", retry_after: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason="HTTP phrase")
    exc.body = json.dumps(
        {"kind": "Status", "reason": reason, "message": f"echoing {LEAK}", "code": status}
    ).encode()
    headers = CIMultiDict({"Retry-After": retry_after} if retry_after else {})
    exc.headers = CIMultiDictProxy(headers)
    return exc


@pytest.mark.parametrize(
    ("status", "reason", "kind", "message"),
    [
        (404, "NotFound", KubeNotFound, f"{WHAT} not found"),
        (409, "AlreadyExists", KubeConflict, f"{WHAT} already exists (HTTP 409 AlreadyExists)"),
        (409, "Conflict", KubeConflict, f"{WHAT} was changed concurrently (HTTP 409 Conflict)"),
        (403, "Forbidden", KubeForbidden, f"{WHAT}: forbidden (HTTP 403 Forbidden)"),
        (401, "Unauthorized", KubeForbidden, f"{WHAT}: forbidden (HTTP 401 Unauthorized)"),
        (422, "Invalid", KubeInvalid, f"{WHAT}: rejected as invalid (HTTP 422 Invalid)"),
        (410, "Expired", KubeGone, f"{WHAT}: resource version expired (HTTP 410 Expired)"),
        (
            500,
            "InternalError",
            KubeUnavailable,
            f"{WHAT}: Kubernetes API unavailable (HTTP 500 InternalError)",
        ),
        (503, "", KubeUnavailable, f"{WHAT}: Kubernetes API unavailable (HTTP 503)"),
        (418, "", KubeError, f"{WHAT}: Kubernetes API error (HTTP 418)"),
    ],
)
def test_translate_maps_status_codes(
    status: int, reason: str, kind: type[KubeError], message: str
) -> None:
    error = translate(api_error(status, reason), WHAT)
    assert type(error) is kind
    assert str(error) == message
    assert (error.status, error.reason) == (status, reason or None)


def test_translate_never_copies_the_response_body() -> None:
    for status in (400, 404, 409, 403, 410, 422, 429, 500):
        assert LEAK not in str(translate(api_error(status, "Whatever"), WHAT))


def test_throttling_and_server_errors_carry_retry_after() -> None:
    throttled = translate(api_error(429, "TooManyRequests", retry_after="7"), WHAT)
    assert isinstance(throttled, KubeUnavailable)
    assert throttled.retry_after == 7.0
    unavailable = translate(api_error(503, "ServiceUnavailable"), WHAT)
    assert isinstance(unavailable, KubeUnavailable)
    assert unavailable.retry_after is None


def test_connection_errors_and_timeouts_are_unavailable() -> None:
    refused = translate(aiohttp.ServerDisconnectedError(), WHAT)
    timed_out = translate(TimeoutError(), WHAT)
    assert isinstance(refused, KubeUnavailable)
    assert isinstance(timed_out, KubeUnavailable)
    assert str(timed_out) == f"{WHAT}: Kubernetes API unreachable (TimeoutError)"
    assert refused.status is None


def test_an_exception_without_a_body_still_translates() -> None:
    error = translate(ApiException(status=404, reason="Not Found"), WHAT)
    assert isinstance(error, KubeNotFound)
    assert error.reason is None


def test_metrics_name_errors_without_their_layer_prefix() -> None:
    assert metrics.error_name(KubeNotFound("x")) == "NotFound"
    assert metrics.error_name(BackendNotFound("x")) == "NotFound"
    assert metrics.error_name(BackendUnavailable("x")) == "Unavailable"
    assert metrics.error_name(KubeError("x")) == "KubeError"
    assert metrics.error_name(BackendError("x")) == "BackendError"
    assert metrics.error_name(ValueError("x")) == "ValueError"
