"""AgentTask handlers: resume, start, complete, finalize. Renewals and the rest of a
task's life run from the operator's one scheduler (services/scheduler.py), not from a
Kopf daemon per task."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from agentcred.handlers.errors import to_kopf
from agentcred.handlers.filters import served
from agentcred.handlers.memo import OperatorMemo
from agentcred.models.api_names import GROUP, VERSION, Annotation, Plural
from agentcred.models.errors import OperatorError, SpecError
from agentcred.services import lifecycle, renew_request
from agentcred.services.deps import Deps

log = logging.getLogger("agentcred.tasks")
PLURAL = Plural.TASKS.value
HANDLED = OperatorError  # says itself whether to retry (models/errors.py)
Start = Callable[[Deps, Mapping[str, Any], int], Awaitable[None]]


@kopf.on.resume(GROUP, VERSION, PLURAL, when=served)
async def resume(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    await _starting(lifecycle.resume, body, memo, retry)


@kopf.on.create(GROUP, VERSION, PLURAL, when=served)
async def start(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    await _starting(lifecycle.start, body, memo, retry)


async def _starting(start: Start, body: kopf.Body, memo: OperatorMemo, retry: int) -> None:
    """Resume or start a task; a spec that cannot be read fails for good (permanent)."""
    try:
        await start(memo.deps, body, retry)
    except HANDLED as exc:
        raise to_kopf(exc, retry) from None


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.completed", new=True, when=served)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.failureReason", new=kopf.PRESENT, when=served)
async def complete(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    try:
        await lifecycle.complete(memo.deps, body)
    except HANDLED as exc:
        raise to_kopf(exc, retry) from None


@kopf.on.event(
    GROUP,
    VERSION,
    PLURAL,
    annotations={Annotation.RENEW_REQUESTED_AT.value: kopf.PRESENT},
    when=served,
)
async def renew_requested(type: str | None, body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    """A person asked for the task's credentials now (``kubectl agentcred renew``); an
    event handler (see services/renew_request.py), so a failure is logged, not retried:
    the value stays pending and the next event of the task tries again."""
    if type == "DELETED":
        return
    try:
        await renew_request.honour(memo.deps, body)
    except HANDLED as exc:
        log.warning("renewal request for %s not honoured yet: %s", body["metadata"]["name"], exc)


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.serviceAccountName", when=served)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.credentials", when=served)
async def identity_changed(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    """The identity fields changed past the CRD rules and the admission policy (an object
    from before them, a CRD replaced): end the task now, not at its next renewal."""
    try:
        await lifecycle.recheck_identity(memo.deps, body)
    except SpecError:
        return  # a spec the operator cannot read: nothing is done for it
    except HANDLED as exc:
        raise to_kopf(exc, retry) from None


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", when=served)
async def edited(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    """An approved task edited since its approval ends (services/approval.voided)."""
    try:
        await lifecycle.recheck_approval(memo.deps, body)
    except SpecError:
        return
    except HANDLED as exc:
        raise to_kopf(exc, retry) from None


@kopf.on.delete(GROUP, VERSION, PLURAL, when=served)
async def finalize(body: kopf.Body, memo: OperatorMemo, retry: int, **_: Any) -> None:
    try:
        await lifecycle.finalize(memo.deps, body)
    except SpecError:
        return  # nothing could have been issued for a spec we cannot read
    except HANDLED as exc:
        raise to_kopf(exc, retry) from None
