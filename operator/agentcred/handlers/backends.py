"""CredentialBackend handlers: report on the platform's object whether it is usable, and
re-check the AgentCredentials that use it when it changes."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.services import backend_status, credential_recheck
from agentcred.services.deps import Deps

GROUP, VERSION, PLURAL = "agentcred.io", "v1alpha1", "credentialbackends"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def check(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: kopf.Memo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    deps: Deps = memo["deps"]
    name = str(meta["name"])
    patch.status.update(
        await backend_status.evaluate(deps, name, dict(spec), meta.get("generation"), dict(status))
    )
    await credential_recheck.recheck_all(deps, backend=name)
