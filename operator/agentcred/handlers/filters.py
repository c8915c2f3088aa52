"""Kopf ``when=`` filters: objects of namespaces this operator does not serve are ignored
(the system's namespaces, its own, and any outside ``AGENTCRED_NAMESPACES``)."""

from __future__ import annotations

from typing import Any

from agentcred.handlers.memo import OperatorMemo


def served(namespace: str | None, memo: OperatorMemo, **_: Any) -> bool:
    return namespace is None or memo.settings.serves(namespace)


def served_namespace(name: str, memo: OperatorMemo, **_: Any) -> bool:
    """For the Namespace objects themselves (cluster-scoped: their own name is the namespace)."""
    return memo.settings.serves(name)
