"""The operator's spans (agentcred/tracing.py) on the fake API: which spans one task's
life makes, in which order and trace, with which attributes, and that no credential
value is ever an attribute. Spans go to the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentcred import tracing
from agentcred.models.api_names import Annotation
from support.harness import Harness, play
from support.harness.objects import agent_task, world
from support.harness.store import Body

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"

ISSUE_TREE = [
    tracing.AUTHORIZE,
    tracing.TOKEN_REQUEST,
    tracing.LOGIN,
    tracing.BACKEND_ISSUE,
    tracing.SECRET_WRITE,
    tracing.ISSUE,
]  # in the order they end: children first


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
    provider.shutdown()


def traced_world(traceparent: str | None = TRACEPARENT, request: str = "vault") -> list[Body]:
    task = agent_task()
    if traceparent is not None:
        task["metadata"]["annotations"] = {
            Annotation.TRACEPARENT: traceparent,
            Annotation.CORRELATION_ID: "session-42",
        }
    return world(task=task, request=request)


def names(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> list[str]:
    return [s.name for s in spans]


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.name == name]
    return found


def test_an_issue_continues_the_clients_trace_with_one_span_per_step(
    spans: InMemorySpanExporter,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()

    play(Harness(traced_world()), scenario)
    done = spans.get_finished_spans()
    assert names(done) == ISSUE_TREE
    issue = by_name(done, tracing.ISSUE)
    assert issue.parent is not None and f"{issue.parent.span_id:016x}" == CLIENT_SPAN
    login = by_name(done, tracing.LOGIN)
    for span in done:
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        if span is issue:
            continue
        # every step a child of the issue; the agent's token is asked for by the login
        parent = login if span.name == tracing.TOKEN_REQUEST else issue
        assert span.parent is not None and span.parent.span_id == parent.context.span_id
    assert dict(issue.attributes or {}) == {
        tracing.TASK: "t1",
        tracing.NAMESPACE: "team-a",
        tracing.SERVICE_ACCOUNT: "agent",
        tracing.CREDENTIAL: "db",
        tracing.BACKEND: "vault",
        tracing.LEASE_ID: "lease-2",
        tracing.CORRELATION_ID: "session-42",
    }
    assert dict(by_name(done, tracing.BACKEND_ISSUE).attributes or {})[tracing.LEASE_ID] == (
        "lease-2"
    )


def test_renewal_and_revocation_join_the_same_trace(spans: InMemorySpanExporter) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        spans.clear()
        await h.advance(400)  # past renewAt (~382 s)
        # the credential re-authorized (the platform may have changed its mind), renewed
        assert names(spans.get_finished_spans()) == [tracing.AUTHORIZE, tracing.RENEW]
        spans.clear()
        await h.complete()

    play(Harness(traced_world()), scenario)
    (revoke,) = spans.get_finished_spans()
    assert revoke.name == tracing.REVOKE
    assert f"{revoke.context.trace_id:032x}" == TRACE_ID
    attrs = dict(revoke.attributes or {})
    assert attrs[tracing.LEASE_ID] == "lease-2" and attrs[tracing.BACKEND] == "vault"
    assert attrs[tracing.CORRELATION_ID] == "session-42"


def test_a_reissue_is_one_span_holding_the_fresh_issue(spans: InMemorySpanExporter) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        spans.clear()
        await h.advance(700)  # an unrenewable lease is re-issued when due

    play(Harness(traced_world(request="awsSts")), scenario)
    done = spans.get_finished_spans()
    assert tracing.REISSUE in names(done)
    reissue = by_name(done, tracing.REISSUE)
    assert f"{reissue.context.trace_id:032x}" == TRACE_ID
    assert dict(reissue.attributes or {})[tracing.LEASE_ID] not in ("", "lease-2")
    fresh = by_name(done, tracing.BACKEND_ISSUE)
    assert fresh.parent is not None and fresh.parent.span_id == reissue.context.span_id


@pytest.mark.parametrize(
    "given",
    [
        None,
        "not-a-traceparent",
        f"00-{'0' * 32}-{CLIENT_SPAN}-01",  # an invalid (all-zero) trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID.upper()}-{CLIENT_SPAN}-01",
        f"ff-{TRACE_ID}-{CLIENT_SPAN}-01",
        f"00-{TRACE_ID}-{CLIENT_SPAN}-01\r\nX-Injected: 1",
    ],
)
def test_a_missing_or_malformed_traceparent_starts_a_trace_of_its_own(
    spans: InMemorySpanExporter, given: str | None
) -> None:
    async def scenario(h: Harness) -> None:
        await h.start()

    play(Harness(traced_world(given)), scenario)
    issue = by_name(spans.get_finished_spans(), tracing.ISSUE)
    assert issue.parent is None
    assert f"{issue.context.trace_id:032x}" != TRACE_ID


def test_no_credential_value_is_ever_an_attribute(spans: InMemorySpanExporter) -> None:
    values: set[str] = set()

    async def scenario(h: Harness) -> None:
        await h.start()
        values.update((h.secret_data("team-a", "t1-db") or {}).values())
        await h.advance(400)
        values.update((h.secret_data("team-a", "t1-db") or {}).values())
        await h.complete()

    play(Harness(traced_world()), scenario)
    assert values and all(values)
    done = spans.get_finished_spans()
    assert {tracing.ISSUE, tracing.RENEW, tracing.REVOKE} <= set(names(done))
    for span in done:
        said = [span.name, span.status.description or ""]
        said += [str(v) for v in (span.attributes or {}).values()]
        said += [str(e.attributes) for e in span.events]
        for value in values:
            assert not any(value in text for text in said), (span.name, value)


def test_off_no_span_is_made_and_nothing_is_parsed() -> None:
    assert not tracing.enabled()
    with tracing.span(tracing.ISSUE, None, credential="db") as span:
        assert span is None
    assert tracing.traceparent() is None


def test_configure_turns_tracing_on_only_with_an_endpoint() -> None:
    assert tracing.configure({}) is False and not tracing.enabled()
    try:
        assert tracing.configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
        assert tracing.enabled()
    finally:
        tracing.shutdown()
        tracing.use_provider(None)


def test_vault_requests_carry_the_current_traceparent(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvac.adapters import JSONAdapter  # noqa: PLC0415

    from agentcred.backends.vault.connection import CorrelatedAdapter  # noqa: PLC0415

    seen: list[dict[str, str]] = []
    monkeypatch.setattr(
        JSONAdapter, "request", lambda self, method, url, headers=None, **kw: seen.append(headers)
    )
    adapter = CorrelatedAdapter(base_uri="http://127.0.0.1:9", correlation_id="session-42")
    adapter.request("GET", "/v1/sys/health")
    with tracing.span(tracing.LOGIN, None) as span:
        assert span is not None
        adapter.request("GET", "/v1/sys/health")
        expected = f"00-{span.get_span_context().trace_id:032x}-"
    assert seen[0] == {"X-Correlation-Id": "session-42"}
    assert seen[1]["X-Correlation-Id"] == "session-42"
    assert seen[1]["traceparent"].startswith(expected)
