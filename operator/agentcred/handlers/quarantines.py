"""CredentialQuarantine handlers: keep the operator's index of quarantines from the watch
(a deletion lifts one at once), and enforce one when it is created, resumed or edited."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.handlers.errors import to_kopf
from agentcred.handlers.memo import OperatorMemo
from agentcred.models.api_names import GROUP, VERSION, Plural
from agentcred.models.errors import OperatorError
from agentcred.services import quarantine

PLURAL = Plural.QUARANTINES.value


@kopf.on.event(GROUP, VERSION, PLURAL)
async def observed(type: str | None, body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    """Every event: the index follows at once (async: Kopf would run a sync one in a thread)."""
    deleted = type == "DELETED" or bool(body.get("metadata", {}).get("deletionTimestamp"))
    quarantine.observe(
        memo.deps, str(body["metadata"]["name"]), dict(body.get("spec") or {}), deleted=deleted
    )


@kopf.on.resume(GROUP, VERSION, PLURAL)
async def resume(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    """At start: enforce again (tasks created while no operator watched are ended now)."""
    await _enforce(body, memo, retry)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def enforce(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    await _enforce(body, memo, retry)


async def _enforce(body: kopf.Body, memo: OperatorMemo, retry: int) -> None:
    try:
        await quarantine.enforce(memo.deps, body)
    except OperatorError as exc:
        raise to_kopf(exc, retry) from None
