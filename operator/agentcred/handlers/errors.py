"""The one place where an error's retry decision becomes Kopf's retry semantics."""

from __future__ import annotations

import random

import kopf

from agentcred.models.errors import retry_decision
from agentcred.services.timing import backoff

_rng = random.Random()  # noqa: S311 - jitter, not security


def to_kopf(exc: Exception, retry: int) -> kopf.PermanentError | kopf.TemporaryError:
    """Map a core error to Kopf: permanent, or temporary after its ``retry_after`` (else
    our backoff with jitter). An error the core does not know is raised as it is."""
    decision = retry_decision(exc)
    if decision is None:
        raise exc
    if decision.permanent:
        return kopf.PermanentError(str(exc))
    return kopf.TemporaryError(str(exc), delay=decision.retry_after or backoff(retry, _rng))
