"""OpenTelemetry for the client, through ``opentelemetry-api`` only.

A session runs inside a span (``agentcred.task``: started here, a child of the caller's
current span if any) and the task is stamped with that span's W3C ``traceparent``, so the
operator can continue the same trace. Without an OpenTelemetry SDK configured by the
application, the API's tracer is a no-op: the span records nothing and, with no parent
either, no ``traceparent`` is stamped. This module is the one place spans are made, so
more of them (waiting, reading Secrets) can be added here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "agentcred_client"
_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent(ctx: context.Context | None = None) -> str | None:
    """The W3C ``traceparent`` of the current span (of ``ctx``), None when there is no
    valid span (no SDK configured and no incoming trace)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier.get("traceparent")


@contextmanager
def span(name: str, attributes: Mapping[str, str] | None = None) -> Iterator[trace.Span]:
    """A span around part of a session (a no-op span without an SDK); an exception
    leaving it is recorded on it by the API's defaults."""
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, attributes=dict(attributes or {})) as current:
        yield current
