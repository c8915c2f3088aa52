"""CredentialBackend handlers: keep the operator's cache of backends from the watch (resolve
reads it, services/cluster_view.py), report on the platform's object whether it is
usable, and re-check the AgentCredentials that use it when it changes."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.handlers.memo import OperatorMemo
from agentcred.models.api_names import GROUP, VERSION, Kind, Plural
from agentcred.services import backend_status, cluster_view, credential_recheck
from agentcred.services.deps import Deps

PLURAL = Plural.BACKENDS.value


@kopf.on.event(GROUP, VERSION, PLURAL)
async def observed(type: str | None, body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    """Every event: the cache follows at once (an edit applies to the next issue)."""
    cluster_view.observe(memo.deps, Kind.BACKEND, type, body)


@kopf.on.resume(GROUP, VERSION, PLURAL)
async def resume(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: OperatorMemo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    """At start: the backend's own condition only (every AgentCredential resumes and is
    checked by its own handler; re-checking them here too would do that work twice)."""
    deps = memo.deps
    patch.status.update(await _status(deps, spec, status, meta))


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def check(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: OperatorMemo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    """A new or edited backend: its condition, then the credentials that use it."""
    deps = memo.deps
    patch.status.update(await _status(deps, spec, status, meta))
    await credential_recheck.recheck_all(deps, backend=str(meta["name"]))


async def _status(
    deps: Deps, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta
) -> dict[str, Any]:
    return await backend_status.evaluate(
        deps, str(meta["name"]), dict(spec), meta.get("generation"), dict(status)
    )
