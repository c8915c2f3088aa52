"""Prometheus metrics: what the operator does, counted where it happens.

Served on ``AGENTCRED_METRICS_PORT`` when set. Labels are low-cardinality on purpose
(no task or namespace names).
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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


# What reaches a backend (counted by the registry's wrapper, backends/instrumented.py),
# and, apart, what a backend was spared: a task's static read served by the read another
# task made or is making (services/static_reads.py). One backend read per refresh for N
# tasks sharing a secret shows as 1 call and N-1 cache hits.
BACKEND_CALLS = Counter(
    "agentcred_backend_calls_total",
    "Calls that reached a credential backend",
    ["backend", "operation", "outcome"],
)
BACKEND_CACHE_HITS = Counter(
    "agentcred_backend_cache_hits_total",
    "Backend calls not made: served by a shared static read (kept until the next refresh "
    "point, or in flight)",
    ["backend", "operation"],
)

ERRORS = Counter(
    "agentcred_errors_total",
    "Failures isolated to one object in a shared loop (logged and skipped; the loop went on)",
    ["loop", "reason"],
)


LAYER_PREFIXES = ("Backend", "Kube")


def error_name(exc: BaseException) -> str:
    """How metrics and the audit trail name an error: its class name without the layer
    prefix that tells the backends' errors from the Kubernetes layer's (``KubeNotFound``
    and ``BackendNotFound`` are both ``NotFound``, as before the prefixes existed), so
    dashboards and alerts keep their labels. The two bases keep their full names."""
    name = type(exc).__name__
    for prefix in LAYER_PREFIXES:
        rest = name.removeprefix(prefix)
        if rest not in (name, "Error"):
            return rest
    return name


def count_error(loop: str, exc: BaseException) -> None:
    ERRORS.labels(loop, error_name(exc)).inc()


# Buckets from 10 ms to 1 min: a credential is issued or revoked in well under a second
# when all is well; the tail shows slow backends and retries.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ISSUE_DURATION = Histogram(
    "agentcred_issue_duration_seconds",
    "Time to issue one credential into its Secret (login, issue, Secret write)",
    ["backend"],
    buckets=LATENCY_BUCKETS,
)
REVOKE_DURATION = Histogram(
    "agentcred_revoke_duration_seconds",
    "Time to revoke one recorded session (one credential) at its backend",
    ["backend"],
    buckets=LATENCY_BUCKETS,
)
# Renewals happen at the backend alone (no login, no Secret write): timed around the
# backend call in backends/instrumented.py, on the same buckets.
RENEW_DURATION = Histogram(
    "agentcred_renew_duration_seconds",
    "Time a backend took to renew one lease",
    ["backend"],
    buckets=LATENCY_BUCKETS,
)
ACTIVE_TASKS = Gauge("agentcred_active_tasks", "AgentTasks in phase Active served by this operator")
SCHEDULED = Gauge("agentcred_scheduled_items", "Tasks with a next step in the operator's schedule")
# A CredentialQuarantine's matched tasks still holding what a backend could not revoke yet
# (retried every 10 s); removed when the quarantine is lifted. Alert:
# AgentcredQuarantineIncomplete.
QUARANTINE_REVOKE_FAILURES = Gauge(
    "agentcred_quarantine_revoke_failures",
    "Tasks a CredentialQuarantine ended that still hold credentials not revoked yet",
    ["quarantine"],
)


def quarantine_lifted(name: str) -> None:
    with contextlib.suppress(KeyError):  # never enforced by this process
        QUARANTINE_REVOKE_FAILURES.remove(name)


APPROVALS_WAITING = Gauge(
    "agentcred_approvals_waiting", "AgentTasks waiting for a person's approval (AwaitingApproval)"
)
APPROVAL_OLDEST_WAITING = Gauge(
    "agentcred_approval_oldest_waiting_timestamp_seconds",
    "Since when the longest-waiting AgentTask has waited for approval (Unix time; 0: none waits)",
)
APPROVAL_DECISIONS = Counter(
    "agentcred_approval_decisions_total",
    "Approval outcomes applied to AgentTasks",
    ["decision"],  # Approved, Denied, TimedOut, Voided
)
