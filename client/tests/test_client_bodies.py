"""The pure parts: names on the wire, env merging, failure reasons, trace context."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agentcred.models import api_names
from agentcred.models.correlation import well_formed
from agentcred_client import EnvConflict, bodies, names, tracing


def test_the_clients_names_are_the_operators() -> None:
    assert (names.GROUP, names.VERSION, names.TASKS) == (
        api_names.GROUP,
        api_names.VERSION,
        api_names.Plural.TASKS,
    )
    assert names.CORRELATION_ID == api_names.Annotation.CORRELATION_ID
    assert names.TRACEPARENT == api_names.Annotation.TRACEPARENT
    assert names.TASK_LABEL == api_names.Label.TASK
    assert (names.READY, names.REVOKED) == (
        api_names.ConditionType.READY,
        api_names.ConditionType.REVOKED,
    )


def test_the_clients_correlation_ids_are_taken_by_the_operator() -> None:
    assert well_formed(bodies.new_correlation_id())


def test_env_merges_credentials_and_refuses_a_key_with_two_values() -> None:
    same = {"a": {"HOST": "db", "USER": "u1"}, "b": {"HOST": "db", "TOKEN": "t"}}
    assert bodies.merge_env(same) == {"HOST": "db", "USER": "u1", "TOKEN": "t"}
    with pytest.raises(EnvConflict) as conflict:
        bodies.merge_env({"a": {"PASSWORD": "p1"}, "b": {"PASSWORD": "p2"}})
    assert conflict.value.key == "PASSWORD" and conflict.value.credentials == ("a", "b")
    assert "p1" not in str(conflict.value) and "p2" not in str(conflict.value)


def test_a_failure_reason_hides_values_and_fits_the_crd() -> None:
    reason = bodies.failure_reason(ValueError("x" * 5000))
    assert len(reason) == names.MAX_FAILURE_REASON and reason.endswith("...")
    hidden = bodies.failure_reason(KeyError("token s3cr3t-value"), ["s3cr3t-value", "ab"])
    assert hidden == "KeyError: 'token ***'"
    assert bodies.failure_reason(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_the_traceparent_of_the_current_span_is_stamped() -> None:
    parent = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    assert tracing.traceparent() is None  # no span: nothing to stamp
    with trace.use_span(NonRecordingSpan(parent)), tracing.span("agentcred.task"):
        stamped = tracing.traceparent()
    assert stamped == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    body = bodies.task_body(
        name="t",
        namespace="n",
        credentials=["db"],
        service_account=None,
        deadline_seconds=300,
        labels=None,
        correlation_id="c",
        traceparent=stamped,
    )
    assert body["metadata"]["annotations"][names.TRACEPARENT] == stamped
    assert body["spec"] == {"credentials": [{"name": "db"}], "activeDeadlineSeconds": 300}
