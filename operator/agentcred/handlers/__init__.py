"""Kopf handlers: parse, delegate to services, map errors. Importing registers them; the
operator's state reaches them as a typed ``memo`` (:class:`memo.OperatorMemo`)."""

from __future__ import annotations

from agentcred.handlers import (
    approvals,
    backends,
    credentials,
    namespaces,
    quarantines,
    startup,
    tasks,
)
from agentcred.handlers.memo import OperatorMemo

__all__ = [
    "OperatorMemo",
    "approvals",
    "backends",
    "credentials",
    "namespaces",
    "quarantines",
    "startup",
    "tasks",
]
