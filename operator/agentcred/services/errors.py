"""Outcomes of task work that the handlers map to Kopf's retry semantics in one place."""

from __future__ import annotations


class TaskRetry(Exception):
    """Retrying can help (missing reference, backend down, name conflict): try again later."""

    def __init__(self, reason: str, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.delay = delay


class TaskFailed(Exception):
    """Issuance failed for good (denied, invalid spec, bad template): the task ends as Failed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
