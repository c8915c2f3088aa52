"""OpenTelemetry spans for what the operator does for a task: optional, off by default.

Why this exists: an auditor follows one agent session from the launcher's span
(``agentcred_client``: ``agentcred.task``, stamped on the task as
``agentcred.io/traceparent``) through the operator's work for it (authorization,
TokenRequest, backend login, issue, Secret write, renewal, re-issue, revocation) and into
the backend's audit log (Vault gets the span's ``traceparent`` header beside
``X-Correlation-Id``). The spans are made with ``opentelemetry-api`` only; the SDK and
the OTLP/HTTP exporter are loaded by :func:`configure` only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard variables, e.g.
``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_HEADERS``, are read by the SDK). Off, every
:func:`span` is a ``nullcontext``: no tracer, no parsing, no allocation of spans.

Rules: attributes name things (task, namespace, ServiceAccount, credential, backend, lease
id, correlation id), never a value; an exception leaving a span marks it failed with the
exception's *type* only (its message may quote a backend's answer), never recorded as an
event. The task's ``traceparent`` is tenant input: only a well-formed W3C version-00
header with non-zero ids is taken (:func:`parent_of`); anything else starts a new trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agentcred.models.api_names import Annotation

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("agentcred.tracing")

TRACER_NAME: Final = "agentcred"
ENDPOINT_ENV: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME: Final = "agentcred-operator"  # unless OTEL_SERVICE_NAME says otherwise

# Span names, in the order a task meets them (docs/operations.md lists them).
ISSUE: Final = "agentcred.issue"
AUTHORIZE: Final = "agentcred.authorize"
TOKEN_REQUEST: Final = "agentcred.token_request"  # noqa: S105  # a span name
LOGIN: Final = "agentcred.backend.login"
BACKEND_ISSUE: Final = "agentcred.backend.issue"
SECRET_WRITE: Final = "agentcred.secret.write"  # noqa: S105  # a span name
RENEW: Final = "agentcred.renew"
REISSUE: Final = "agentcred.reissue"
REVOKE: Final = "agentcred.revoke"

# Attribute keys.
TASK: Final = "agentcred.task"
NAMESPACE: Final = "k8s.namespace.name"
SERVICE_ACCOUNT: Final = "agentcred.service_account"
CREDENTIAL: Final = "agentcred.credential"
BACKEND: Final = "agentcred.backend"
LEASE_ID: Final = "agentcred.lease_id"
CORRELATION_ID: Final = "agentcred.correlation_id"

# W3C trace-context, version 00: lowercase hex, ids not all zeros (checked below).
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_PROPAGATOR = TraceContextTextMapPropagator()
_enabled = False
_provider: TracerProvider | None = None


class TracedTask(Protocol):
    """What a span needs of a task (services/task_view.TaskView has it)."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...


def enabled() -> bool:
    return _enabled


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Export spans over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the SDK
    and exporter are imported only then); whether tracing is on."""
    env = os.environ if environ is None else environ
    if not env.get(ENDPOINT_ENV):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use_provider(provider)
    log.info("tracing: exporting spans over OTLP to %s", env[ENDPOINT_ENV])
    return True


def use_provider(provider: TracerProvider | None) -> None:
    """Make spans with ``provider`` (None: off again). Tests pass one holding an
    in-memory exporter; :func:`configure` the OTLP one."""
    global _enabled, _provider  # noqa: PLW0603  # one switch for the process
    _provider = provider
    _enabled = provider is not None


def shutdown() -> None:
    """Flush and stop the exporter (at the operator's exit)."""
    if _provider is not None:
        with contextlib.suppress(Exception):  # never fail the exit over telemetry
            _provider.shutdown()


def parent_of(annotations: Mapping[str, str]) -> otel_context.Context | None:
    """The trace context the task's creator stamped, None when absent or malformed."""
    value = annotations.get(Annotation.TRACEPARENT)
    if not isinstance(value, str):
        return None
    match = TRACEPARENT.fullmatch(value)
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return _PROPAGATOR.extract({"traceparent": value})


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, for a backend's request headers;
    None when tracing is off or no span is current."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span(
    name: str, task: TracedTask | None = None, /, **attributes: str | None
) -> Iterator[trace.Span | None]:
    """A span named ``name`` (None when tracing is off), with ``attributes`` by their short
    names (``credential=``, ``backend=``, ``lease_id=``, ...; empty ones left out) and,
    with ``task``, the task's name and namespace. Inside another span of this process it
    is that span's child; else, with ``task``, it continues the trace in the task's
    ``agentcred.io/traceparent`` (a new trace when there is none)."""
    if not _enabled:
        yield None
        return
    parent = None
    if task is not None:
        attributes = {"task": task.name, "namespace": task.namespace, **attributes}
        if not trace.get_current_span().get_span_context().is_valid:
            parent = parent_of(task.annotations)
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=_provider)
    attrs = {_KEYS[k]: v for k, v in attributes.items() if v}
    with tracer.start_as_current_span(
        name,
        context=parent,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def note(current: trace.Span | None, **attributes: str | None) -> None:
    """Add attributes learnt inside a span (e.g. the lease id after the issue)."""
    if current is None:
        return
    for key, value in attributes.items():
        if value:
            current.set_attribute(_KEYS[key], value)


_KEYS: Final = {
    "task": TASK,
    "namespace": NAMESPACE,
    "service_account": SERVICE_ACCOUNT,
    "credential": CREDENTIAL,
    "backend": BACKEND,
    "lease_id": LEASE_ID,
    "correlation_id": CORRELATION_ID,
}
