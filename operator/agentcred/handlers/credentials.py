"""AgentCredential handlers: check the credential on change (services/credential_recheck.py
re-checks all of them periodically)."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.handlers.filters import served
from agentcred.handlers.memo import OperatorMemo
from agentcred.models.api_names import GROUP, VERSION, Plural
from agentcred.services import credential_status

PLURAL = Plural.CREDENTIALS.value


@kopf.on.resume(GROUP, VERSION, PLURAL, when=served)
@kopf.on.create(GROUP, VERSION, PLURAL, when=served)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", when=served)
async def check(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: OperatorMemo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    deps = memo.deps
    new = await credential_status.evaluate(
        deps,
        str(meta["namespace"]),
        str(meta["name"]),
        dict(spec),
        meta.get("generation"),
        dict(status),
    )
    patch.status.update(new)
