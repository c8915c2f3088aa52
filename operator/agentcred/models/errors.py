"""Errors the core sees, and the one property every one of them carries: whether
retrying can help (``permanent``) and, if it can, how soon (``retry_after``, seconds, or
None for "back off as usual"). ``retry_decision`` is the one function that reads it:
the handlers turn it into Kopf's PermanentError/TemporaryError, the lifecycle into a
task that ends Failed or waits, so "is this permanent?" is answered in one place.

Also the one error raised for a spec the operator cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload


class OperatorError(Exception):
    """Base of every error the core handles: backends', the Kubernetes layer's, the
    services'. A subclass says ``permanent = True`` when only a change of spec or
    configuration helps; an instance may carry a ``retry_after`` hint (a 429's
    Retry-After, a known due time)."""

    permanent: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryDecision:
    permanent: bool
    retry_after: float | None  # None: the caller's own backoff; always None when permanent


@overload
def retry_decision(exc: OperatorError) -> RetryDecision: ...
@overload
def retry_decision(exc: BaseException) -> RetryDecision | None: ...
def retry_decision(exc: BaseException) -> RetryDecision | None:
    """Whether ``exc`` is worth retrying and when; None for an error the core does not
    know (a bug), which callers let propagate."""
    if not isinstance(exc, OperatorError):
        return None
    if exc.permanent:
        return RetryDecision(permanent=True, retry_after=None)
    return RetryDecision(permanent=False, retry_after=exc.retry_after or None)


class SpecError(OperatorError, ValueError):
    """A spec that no retry can fix: names the field (``spec.vault.auth``) and why."""

    permanent = True

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class NotAllowed(OperatorError, ValueError):
    """A request outside what the platform allowed: the backend does not select the
    namespace, or a path, secret, role or ServiceAccount is outside its allow-list.
    Names the field and the backend; nothing is sent to the backend."""

    permanent = True

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class UnsafePattern(SpecError):
    """A CredentialBackend allow-list pattern whose placeholder could let one tenant's
    request match another's (models/patterns.py): the backend is unusable until fixed."""
