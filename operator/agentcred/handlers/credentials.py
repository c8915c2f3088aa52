"""AgentCredential handlers: validate the spec and report it on status."""

from __future__ import annotations

from typing import Any

import kopf

from agentcred.services import credential_status

GROUP, VERSION, PLURAL = "agentcred.io", "v1alpha1", "agentcredentials"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    new = credential_status.evaluate(dict(spec), meta.get("generation"), dict(status))
    patch.status.update(new)
