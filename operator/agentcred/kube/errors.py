"""One error hierarchy for everything the Kubernetes API can answer.

The client library raises ``ApiException`` with a status code, aiohttp raises its own
connection errors, and asyncio raises timeouts. Callers should not care which: they
need to know whether the object is missing, someone else changed it, we may not touch
it, or the API server is down for now. ``translate`` makes that decision once.

Messages name the object ("Secret team-a/claim-db not found") and the server's short
reason word, never the response body: a body can echo what was sent, and what we send
may be a Secret's data. The library's exception stays attached as ``__cause__``.
Every class is named ``Kube*`` (the backends' errors are ``Backend*``), so a service can
import both without aliases.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from agentcred.models.errors import OperatorError


class KubeError(OperatorError):
    """Base of every Kubernetes API failure. ``status`` is the HTTP code when there was one.
    All are temporary to the core (models/errors.py): a forbidden or invalid request is
    retried with backoff, as RBAC or a webhook can be fixed while the task waits."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason  # the API Status reason word, e.g. "AlreadyExists"


class KubeNotFound(KubeError):
    """The object (or its namespace, or a key in it) does not exist."""


class KubeConflict(KubeError):
    """409: the object already exists, or changed since we read it (stale resourceVersion)."""


class KubeForbidden(KubeError):
    """401/403: the operator's identity may not do this (RBAC, admission, terminating namespace)."""


class KubeInvalid(KubeError):
    """400/422: the request itself is wrong; repeating it will not help."""


class KubeGone(KubeError):
    """410: a watch's resourceVersion or a list's continue token is too old; list again."""


class KubeUnavailable(KubeError):
    """Unreachable, timed out, throttled (429) or a 5xx: retry later, after ``retry_after``."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


class KubeSecretCollision(KubeError):
    """A Secret of the wanted name exists and is not ours: we neither overwrite nor delete it."""


def subject(kind: str, namespace: str | None, name: str | None = None) -> str:
    """How messages name an object: ``Secret team-a/claim-db``, ``Secrets in team-a``."""
    if name is None:
        return f"{kind} in {namespace}" if namespace else f"{kind} in all namespaces"
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def translate(
    exc: ApiException | aiohttp.ClientError | asyncio.TimeoutError, what: str
) -> KubeError:
    """Map a client-library failure about ``what`` to our error type (to be raised ``from exc``)."""
    if not isinstance(exc, ApiException):
        detail = type(exc).__name__ if isinstance(exc, asyncio.TimeoutError) else str(exc)
        return KubeUnavailable(
            f"{what}: Kubernetes API unreachable ({detail or type(exc).__name__})"
        )
    status = int(exc.status or 0)
    reason = _status_reason(exc)
    suffix = f" (HTTP {status}{' ' + reason if reason else ''})"
    if status == 404:
        return KubeNotFound(f"{what} not found", status=status, reason=reason)
    if status == 409:
        problem = "already exists" if reason == "AlreadyExists" else "was changed concurrently"
        return KubeConflict(f"{what} {problem}{suffix}", status=status, reason=reason)
    if status in (401, 403):
        return KubeForbidden(f"{what}: forbidden{suffix}", status=status, reason=reason)
    if status in (400, 422):
        return KubeInvalid(f"{what}: rejected as invalid{suffix}", status=status, reason=reason)
    if status == 410:
        return KubeGone(f"{what}: resource version expired{suffix}", status=status, reason=reason)
    if status in (408, 429) or status >= 500:
        return KubeUnavailable(
            f"{what}: Kubernetes API unavailable{suffix}",
            status=status,
            reason=reason,
            retry_after=_retry_after(exc),
        )
    return KubeError(f"{what}: Kubernetes API error{suffix}", status=status, reason=reason)


def _status_reason(exc: ApiException) -> str | None:
    """The ``reason`` word of the API Status in the body (``AlreadyExists``, ``Expired``...)."""
    body: Any = getattr(exc, "body", None)
    try:
        parsed = json.loads(body) if body else None
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("reason"), str) and parsed["reason"]:
        return str(parsed["reason"])
    return None


def _retry_after(exc: ApiException) -> float | None:
    headers: Any = getattr(exc, "headers", None)
    value = headers.get("Retry-After") if headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
