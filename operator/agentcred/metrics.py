"""Prometheus metrics: what the operator does, counted where it happens.

Served on ``AGENTCRED_METRICS_PORT`` when set. Labels are low-cardinality on purpose
(no task or namespace names).
"""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

SWEEP_RUNS = Counter("agentcred_sweep_runs_total", "Orphan sweeps run")
SWEEP_FOUND = Counter(
    "agentcred_sweep_found_total", "Orphaned sessions or tasks found by the sweep", ["kind"]
)
SWEEP_REVOKED = Counter("agentcred_sweep_revoked_total", "Sessions revoked by the sweep")
SWEEP_REVOKE_FAILED = Counter(
    "agentcred_sweep_revoke_failed_total",
    "Sessions the sweep could not revoke (retried next sweep)",
)


def serve(port: int) -> None:
    if port:
        start_http_server(port)


BACKEND_CALLS = Counter(
    "agentcred_backend_calls_total",
    "Calls to credential backends",
    ["backend", "operation", "outcome"],
)

ERRORS = Counter(
    "agentcred_errors_total",
    "Failures isolated to one object in a shared loop (logged and skipped; the loop went on)",
    ["loop", "reason"],
)


def count_error(loop: str, exc: BaseException) -> None:
    ERRORS.labels(loop, type(exc).__name__).inc()
