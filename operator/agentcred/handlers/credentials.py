"""AgentCredential handlers: keep the operator's cache of credentials from the watch
(resolve reads it, services/cluster_view.py), check the credential on change
(services/credential_recheck.py re-checks all of them periodically)."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.handlers.filters import served
from agentcred.handlers.memo import OperatorMemo
from agentcred.models.api_names import GROUP, VERSION, Kind, Plural
from agentcred.services import cluster_view, credential_status

PLURAL = Plural.CREDENTIALS.value


@kopf.on.event(GROUP, VERSION, PLURAL, when=served)
async def observed(type: str | None, body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    """Every event of a served namespace's credential: the cache follows at once."""
    cluster_view.observe(memo.deps, Kind.CREDENTIAL, type, body)


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
