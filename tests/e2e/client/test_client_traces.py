"""One trace from an agent session to the operator's issue and revoke, in a real trace
store: the client's span (agentcred_client) and the operator's spans (agentcred/tracing.py,
exported over OTLP/HTTP) read back from Jaeger's query API (the testbed's, see
agentcred_testbed/jaeger.py).

Jaeger is found in the testbed's env (``JAEGER_OTLP_ENDPOINT``, ``JAEGER_QUERY_URL``); a
testbed started before Jaeger joined it has neither, and this test then fails saying so:
it starts nothing itself. To develop against a Jaeger started by hand, set
``AGENTCRED_TEST_JAEGER_OTLP`` and ``AGENTCRED_TEST_JAEGER_QUERY``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.util._once import Once

from agentcred import tracing
from agentcred.models.api_names import Annotation
from agentcred_client import AgentTasks
from support.credentials import vault_database
from support.kube import wait_for
from support.leaks import assert_no_leaks
from support.operator import OperatorProcess, operator_env, running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e

CLIENT_SERVICE = "agentcred-trace-test-launcher"
OPERATOR_SERVICE = "agentcred-operator"
NONE: dict[str, Any] = {"spans": []}


def jaeger(testbed_env: dict[str, str]) -> tuple[str, str]:
    """(OTLP/HTTP endpoint, query URL) of the testbed's Jaeger; fails when there is none."""
    otlp = os.environ.get("AGENTCRED_TEST_JAEGER_OTLP") or testbed_env.get("JAEGER_OTLP_ENDPOINT")
    query = os.environ.get("AGENTCRED_TEST_JAEGER_QUERY") or testbed_env.get("JAEGER_QUERY_URL")
    if not otlp or not query:
        pytest.fail(
            "the testbed has no Jaeger (no JAEGER_OTLP_ENDPOINT/JAEGER_QUERY_URL in "
            ".testbed/env): it was started before Jaeger joined it. Restart the testbed "
            "(make testbed-down testbed-up; the first start builds Jaeger), or point "
            "AGENTCRED_TEST_JAEGER_OTLP/AGENTCRED_TEST_JAEGER_QUERY at a running Jaeger."
        )
    return otlp, query


@pytest.fixture
def jaeger_urls(testbed_env: dict[str, str]) -> tuple[str, str]:
    return jaeger(testbed_env)


@pytest.fixture
def traced_operator(
    testbed_env: dict[str, str],
    namespace: str,
    crds: None,
    tmp_path: Path,
    jaeger_urls: tuple[str, str],
) -> Iterator[OperatorProcess]:
    env = {
        **operator_env(testbed_env),
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger_urls[0],
        "OTEL_SERVICE_NAME": OPERATOR_SERVICE,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans reach Jaeger at once
    }
    with running_operator(env, tmp_path / "operator.log", "--namespace", namespace) as op:
        yield op


@pytest.fixture
def launcher_tracing(
    jaeger_urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TracerProvider]:
    """The launcher's SDK, as an application using agentcred_client configures it (the
    API's global provider: the client uses whatever the application set). The API lets a
    process set it once; the test's is undone afterwards (the API's module state put
    back), so later tests in this process see no SDK, as they would in their own."""
    provider = TracerProvider(resource=Resource.create({"service.name": CLIENT_SERVICE}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{jaeger_urls[0]}/v1/traces"))
    )
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another test set a tracer provider"
    yield provider
    provider.shutdown()


def fetch_trace(query: str, trace_id: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{query}/api/traces/{trace_id}", timeout=5) as answer:  # noqa: S310
            body = json.load(answer)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # not (yet) stored
            return None
        raise
    data = body.get("data") or []
    return data[0] if data else None


def spans_named(found: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for span in found["spans"]:
        by.setdefault(span["operationName"], []).append(span)
    return by


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags") or []}


def service(found: dict[str, Any], span: dict[str, Any]) -> str:
    return str(found["processes"][span["processID"]]["serviceName"])


def test_one_trace_holds_the_session_and_the_operators_issue_and_revoke(
    kube: client.ApiClient,
    namespace: str,
    testbed_env: dict[str, str],
    traced_operator: OperatorProcess,
    launcher_tracing: TracerProvider,
    jaeger_urls: tuple[str, str],
) -> None:
    scene = Scenario(kube, namespace)
    account = vault_database(scene, testbed_env, "research-db")
    with (
        AgentTasks(namespace=namespace) as tasks,
        tasks.run(
            credentials=["research-db"],
            service_account=account,
            deadline_seconds=120,
            wait_revoked=True,
            correlation_id="trace-session-1",
        ) as t,
    ):
        data = t.secret("research-db")
    task = scene.get_task(t.name) or {}
    traceparent = task["metadata"]["annotations"][Annotation.TRACEPARENT]
    match = tracing.TRACEPARENT.fullmatch(traceparent)
    assert match is not None, traceparent
    trace_id = match[1]

    wanted = {"agentcred.task", tracing.ISSUE, tracing.REVOKE}

    def complete() -> dict[str, Any] | None:
        found = fetch_trace(jaeger_urls[1], trace_id)
        return found if found and wanted <= set(spans_named(found)) else None

    found = wait_for(
        complete,
        timeout=30,
        what=f"trace {trace_id} in Jaeger with {sorted(wanted)}",
        describe=lambda: sorted(spans_named(fetch_trace(jaeger_urls[1], trace_id) or NONE)),
    )
    named = spans_named(found)
    (session,) = named["agentcred.task"]
    (issue,) = named[tracing.ISSUE]
    (revoke,) = named[tracing.REVOKE]
    assert service(found, session) == CLIENT_SERVICE
    assert service(found, issue) == service(found, revoke) == OPERATOR_SERVICE
    # the operator continued the session's span: issue and revoke are its children
    for span in (issue, revoke):
        refs = [(r["refType"], r["spanID"]) for r in span["references"]]
        assert refs == [("CHILD_OF", session["spanID"])], span["operationName"]
    # in order: the session began, the issue, then the revocation, inside the session
    assert session["startTime"] <= issue["startTime"] < revoke["startTime"]
    assert revoke["startTime"] + revoke["duration"] <= session["startTime"] + session["duration"]
    # the steps of the issue, each in the same trace
    for step in (tracing.AUTHORIZE, tracing.TOKEN_REQUEST, tracing.LOGIN, tracing.SECRET_WRITE):
        assert step in named, step
    issued, revoked = tags(issue), tags(revoke)
    assert issued["agentcred.task"] == revoked["agentcred.task"] == t.name
    assert issued["agentcred.lease_id"] == revoked["agentcred.lease_id"] != ""
    assert issued["agentcred.correlation_id"] == "trace-session-1"
    assert issued["agentcred.backend"] == "vault"
    # never a value: no credential in anything the trace holds
    text = json.dumps(found)
    assert data["password"] not in text and data["username"] not in text
    assert_no_leaks(scene, [traced_operator])
