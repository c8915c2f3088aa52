"""The one place where service outcomes become Kopf's retry semantics."""

from __future__ import annotations

import random

import kopf

from agentcred.backends.base import PERMANENT, BackendError, BackendUnavailable
from agentcred.kube.errors import KubeError, KubeUnavailable
from agentcred.services.errors import TaskFailed, TaskRetry
from agentcred.services.timing import backoff

_rng = random.Random()  # noqa: S311 - jitter, not security


def to_kopf(exc: Exception, retry: int) -> kopf.PermanentError | kopf.TemporaryError:
    """Map a service/backend/kube error to a Kopf retry decision (with backoff and jitter)."""
    if isinstance(exc, TaskFailed) or (
        isinstance(exc, BackendError) and isinstance(exc, PERMANENT)
    ):
        return kopf.PermanentError(str(exc))
    if isinstance(exc, TaskRetry):
        return kopf.TemporaryError(exc.message, delay=exc.delay or backoff(retry, _rng))
    if isinstance(exc, BackendUnavailable | KubeUnavailable) and exc.retry_after:
        return kopf.TemporaryError(str(exc), delay=exc.retry_after)
    if isinstance(exc, BackendError | KubeError):
        return kopf.TemporaryError(str(exc), delay=backoff(retry, _rng))
    raise exc
