"""Operator configuration: one typed object read from ``AGENTCRED_*`` variables at start.

Fails fast with a message naming the variable, so a bad Deployment shows its mistake
in the first log line rather than at the first task.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from agentcred.models.api_names import FINALIZER
from agentcred.models.duration import parse_duration

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


class SettingsError(ValueError):
    """A configuration variable has a value the operator cannot use."""


@dataclass(frozen=True)
class Settings:
    log_format: str = "json"
    log_level: str = "INFO"
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    # The operator's own namespace (Downward API in the Deployment): lease records and
    # operator-side Secrets (appRole secret ids, Vault tokens) live here, never in a tenant's.
    namespace: str = "agentcred-system"
    # Never served, even cluster-wide: the system's namespaces (and always the operator's).
    excluded_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    liveness_endpoint: str | None = None
    metrics_port: int = 0  # 0: no metrics server
    sweep_interval: timedelta = timedelta(seconds=60)
    backend_concurrency: int = 32  # threads per backend kind (one pool per SDK)
    # Fairness: concurrent calls to one backend address, and from one namespace, so a slow
    # or tarpitting backend (or a busy tenant) cannot take every thread of the pool.
    target_concurrency: int = 16  # half a kind's pool: a stuck backend leaves the rest
    namespace_concurrency: int = 16
    # Task handlers (start, complete, delete) running at once; the rest wait their turn in
    # arrival order, so a burst finishes tasks one after another instead of all at the end.
    task_concurrency: int = 48
    # While another namespace waits, one namespace holds at most this share of the task
    # handler slots, of the scheduler's steps and of each backend address's call slots;
    # alone it may use them all (services/fair_slots.py). 0.5: two busy tenants split
    # the slots evenly, and a newcomer's first call gets the next slot that frees.
    namespace_share: float = 0.5
    # The operator's own requests in flight at the API server at once (watches aside); the
    # others wait for a turn, handed round-robin across namespaces (kube/request_slots.py):
    # the API server sees a short queue, so one namespace's burst cannot make another's few
    # requests wait behind hundreds.
    api_concurrency: int = 16
    backend_timeout: timedelta = timedelta(seconds=30)  # connect and read, each
    client_cache_size: int = 64  # SDK clients / HTTP pools kept per backend kind (LRU)
    reissue_overlap: timedelta = timedelta(seconds=30)
    # Drift repair re-issues one credential at most this often: a storm stays a drizzle.
    restore_interval: timedelta = timedelta(seconds=30)
    pod_selector: str | None = None  # narrows the pod watch server-side, e.g. "agentcred.io/task"
    finalizer: str = FINALIZER
    # Azure Key Vault clients (see agentcred.backends.azure_key_vault): keep the challenge
    # check on except for vaults outside Azure's domains (emulators); a CA bundle for the
    # vault's connections only; a REST api version for vaults that lag behind the SDK.
    azure_verify_challenge_resource: bool = True
    azure_ca_bundle: str | None = None
    azure_api_version: str | None = None
    # Leader election between replicas (agentcred.leadership): off for a single local
    # process, on in the Deployment. client-go's durations: a Lease is valid for
    # lease_duration without renewal, a leader gives up after renew_deadline without a
    # successful renewal, and everyone polls every retry_period.
    leader_election: bool = False
    leader_election_lease_name: str = "agentcred-operator"
    leader_election_lease_duration: timedelta = timedelta(seconds=15)
    leader_election_renew_deadline: timedelta = timedelta(seconds=10)
    leader_election_retry_period: timedelta = timedelta(seconds=2)

    def serves(self, namespace: str) -> bool:
        """Whether tasks and credentials of ``namespace`` are this operator's to handle."""
        if namespace == self.namespace or namespace in self.excluded_namespaces:
            return False
        return not self.namespaces or namespace in self.namespaces


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(f"AGENTCRED_{name}")
    return value if value else None


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"AGENTCRED_{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"AGENTCRED_{name}={raw!r} must be at least {minimum}")
    return value


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    """A fraction in (0, 1]."""
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"AGENTCRED_{name}={raw!r} is not a number") from None
    if not 0 < value <= 1:
        raise SettingsError(f"AGENTCRED_{name}={raw!r} must be a fraction above 0 and at most 1")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise SettingsError(f"AGENTCRED_{name}={raw!r}: expected true or false")


def _file(env: Mapping[str, str], name: str) -> str | None:
    path = _get(env, name)
    if path is not None and not os.path.isfile(path):
        raise SettingsError(f"AGENTCRED_{name}={path!r} is not a readable file")
    return path


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (
        (_get(env, name) or default).lower()
        if name != "LOG_LEVEL"
        else (_get(env, name) or default).upper()
    )
    if value.lower() not in {a.lower() for a in allowed}:
        raise SettingsError(f"AGENTCRED_{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list; ``none`` for an empty one."""
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.strip().lower() == "none":
        return ()
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _duration(env: Mapping[str, str], name: str, default: str) -> timedelta:
    try:
        return parse_duration(_get(env, name) or default)
    except ValueError as exc:
        raise SettingsError(f"AGENTCRED_{name}: {exc}") from None


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    try:
        sweep = parse_duration(_get(env, "SWEEP_INTERVAL") or "60s")
    except ValueError as exc:
        raise SettingsError(f"AGENTCRED_SWEEP_INTERVAL: {exc}") from None
    try:
        overlap = parse_duration(_get(env, "REISSUE_OVERLAP") or "30s")
    except ValueError as exc:
        raise SettingsError(f"AGENTCRED_REISSUE_OVERLAP: {exc}") from None
    namespaces = tuple(n.strip() for n in (_get(env, "NAMESPACES") or "").split(",") if n.strip())
    settings = Settings(
        log_format=_choice(env, "LOG_FORMAT", "json", ("json", "text")),
        log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        namespaces=namespaces,
        liveness_endpoint=_get(env, "LIVENESS_ENDPOINT"),
        metrics_port=_int(env, "METRICS_PORT", 0),
        namespace=_get(env, "NAMESPACE") or "agentcred-system",
        excluded_namespaces=_list(env, "EXCLUDE_NAMESPACES", SYSTEM_NAMESPACES),
        sweep_interval=sweep,
        backend_concurrency=_int(env, "BACKEND_CONCURRENCY", 32, minimum=1),
        target_concurrency=_int(env, "BACKEND_TARGET_CONCURRENCY", 16, minimum=1),
        namespace_concurrency=_int(env, "NAMESPACE_CONCURRENCY", 16, minimum=1),
        task_concurrency=_int(env, "TASK_CONCURRENCY", 48, minimum=1),
        namespace_share=_share(env, "NAMESPACE_SHARE", 0.5),
        api_concurrency=_int(env, "API_CONCURRENCY", 16, minimum=1),
        backend_timeout=_duration(env, "BACKEND_TIMEOUT", "30s"),
        client_cache_size=_int(env, "CLIENT_CACHE_SIZE", 64, minimum=1),
        reissue_overlap=overlap,
        restore_interval=_duration(env, "RESTORE_INTERVAL", "30s"),
        pod_selector=_get(env, "POD_LABEL_SELECTOR"),
        azure_verify_challenge_resource=_bool(env, "AZURE_VERIFY_CHALLENGE_RESOURCE", True),
        azure_ca_bundle=_file(env, "AZURE_CA_BUNDLE"),
        azure_api_version=_get(env, "AZURE_API_VERSION"),
    )
    return _with_leader_election(settings, env)


def _with_leader_election(settings: Settings, env: Mapping[str, str]) -> Settings:
    """``AGENTCRED_LEADER_ELECTION*``; the three durations must nest as client-go requires
    (retry period < renew deadline < lease duration), or two replicas could both lead."""
    lease = _duration(env, "LEADER_ELECTION_LEASE_DURATION", "15s")
    deadline = _duration(env, "LEADER_ELECTION_RENEW_DEADLINE", "10s")
    retry = _duration(env, "LEADER_ELECTION_RETRY_PERIOD", "2s")
    if not retry < deadline < lease:
        raise SettingsError(
            "AGENTCRED_LEADER_ELECTION_RETRY_PERIOD < _RENEW_DEADLINE < _LEASE_DURATION "
            f"must hold (got {retry.total_seconds():g}s, {deadline.total_seconds():g}s, "
            f"{lease.total_seconds():g}s)"
        )
    return replace(
        settings,
        leader_election=_bool(env, "LEADER_ELECTION", False),
        leader_election_lease_name=_get(env, "LEADER_ELECTION_LEASE_NAME")
        or settings.leader_election_lease_name,
        leader_election_lease_duration=lease,
        leader_election_renew_deadline=deadline,
        leader_election_retry_period=retry,
    )
