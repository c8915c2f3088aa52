"""Every error the core handles says whether retrying helps and when (models/errors.py),
and the one reader, ``retry_decision``, is what Kopf and the lifecycle act on: a
backend's denial ends a task, an outage waits for its Retry-After, an unknown error is
a bug that propagates."""

from __future__ import annotations

import kopf
import pytest

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
)
from agentcred.handlers.errors import to_kopf
from agentcred.kube.errors import KubeConflict, KubeForbidden, KubeUnavailable
from agentcred.models.errors import NotAllowed, RetryDecision, SpecError, retry_decision
from agentcred.services.authorization import Refused
from agentcred.services.errors import TaskFailed, TaskRetry

PERMANENT = RetryDecision(permanent=True, retry_after=None)
BACKOFF = RetryDecision(permanent=False, retry_after=None)


@pytest.mark.parametrize(
    ("exc", "decision"),
    [
        (BackendDenied("403"), PERMANENT),
        (BackendNotFound("no such role"), PERMANENT),
        (BackendInvalidConfig("bad mount"), PERMANENT),
        (BackendError("odd answer"), BACKOFF),
        (BackendUnavailable("503"), BACKOFF),
        (BackendUnavailable("429", retry_after=7.0), RetryDecision(False, 7.0)),
        (KubeUnavailable("429", status=429, retry_after=3.0), RetryDecision(False, 3.0)),
        (KubeConflict("409", status=409), BACKOFF),
        (KubeForbidden("403", status=403), BACKOFF),  # RBAC can be fixed while it waits
        (TaskFailed("TemplateError", "bad template"), PERMANENT),
        (TaskRetry("SecretConflict", "taken"), BACKOFF),
        (TaskRetry("RevokeFailed", "later", retry_after=30.0), RetryDecision(False, 30.0)),
        (Refused("NotAllowed", "outside", permanent=True), PERMANENT),
        (Refused("BackendNotFound", "none yet", permanent=False), BACKOFF),
        (SpecError("spec.ttl", "not a duration"), PERMANENT),
        (NotAllowed("spec.path", "outside the allow-list"), PERMANENT),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
def test_each_error_says_whether_to_retry(exc: Exception, decision: RetryDecision) -> None:
    assert retry_decision(exc) == decision


def test_an_error_the_core_does_not_know_has_no_decision() -> None:
    assert retry_decision(RuntimeError("a bug")) is None
    with pytest.raises(RuntimeError):
        to_kopf(RuntimeError("a bug"), retry=0)


def test_kopf_gets_permanent_or_the_retry_after() -> None:
    assert isinstance(to_kopf(BackendDenied("403"), retry=0), kopf.PermanentError)
    later = to_kopf(BackendUnavailable("429", retry_after=7.0), retry=0)
    assert isinstance(later, kopf.TemporaryError) and later.delay == 7.0
    backoff = to_kopf(TaskRetry("SecretConflict", "taken"), retry=0)
    assert isinstance(backoff, kopf.TemporaryError) and backoff.delay and backoff.delay > 0
