"""Outcomes of task work: the task waits and tries again, or ends as Failed.

Both carry the reason the task's condition and Event show; whether to retry is the
``permanent``/``retry_after`` property every core error has (models/errors.py).
"""

from __future__ import annotations

from agentcred.models.errors import OperatorError


class TaskRetry(OperatorError):
    """Retrying can help (missing reference, backend down, name conflict): try again
    after ``retry_after`` seconds, or the caller's backoff when None."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class TaskFailed(OperatorError):
    """Issuance failed for good (denied, invalid spec, bad template): the task ends as Failed."""

    permanent = True

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
