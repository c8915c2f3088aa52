"""Kopf ``when=`` filters: objects of namespaces this operator does not serve are ignored
(the system's namespaces, its own, and any outside ``AGENTCRED_NAMESPACES``)."""

from __future__ import annotations

from typing import Any

import kopf


def served(namespace: str | None, memo: kopf.Memo, **_: Any) -> bool:
    deps = memo.get("deps")
    return deps is None or namespace is None or bool(deps.settings.serves(namespace))
