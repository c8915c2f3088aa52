"""The fairness scenario of issue #18: one namespace floods, another keeps its pace.

The bench namespace creates ``flood`` tasks at once (per-task identities, as in a burst)
while a second namespace, the victim, creates one task a second on a Vault backend of
its own that points at the same Vault address (so both share that address's call
slots). Reported: the victim's time from create to Secret (alone first, then during the
flood), the flood's own figures, and every renewal of the victim's leases seen during
the run: how long after its planned ``renewAt`` it happened, and whether any lease
passed its ``expiresAt`` first. The victim's credential is the testbed's dynamic
database role with a 60 s lease renewed at 20 % of its life, so its renewals fall
inside the flood.

Everything it creates in the victim namespace (tasks, which revoke their leases on
deletion, the namespace, its backend, its Vault role) is removed on the way out, and by
``python -m bench.run --cleanup``.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentcred.models.api_names import GROUP, VERSION
from bench.kubeapi import Kube, KubeError, ns_path, parse_time
from bench.recorder import SecretRecorder, summary
from bench.vaultapi import Vault
from bench.workload import (
    DEADLINE_SECONDS,
    POLICY,
    RUN_LABEL,
    Workload,
    parallel,
)

VICTIM_NAMESPACE = "agentcred-bench-victim"
VICTIM_BACKEND = "agentcred-bench-victim-vault"
VICTIM_ROLE = "agentcred-bench-victim"
VICTIM_CREDENTIAL = "db"
ALONE = 5  # victim tasks created before the flood: the baseline
POLL = 0.5  # seconds between looks at the victim's renewals
MAX_SECONDS = 120  # the victim stops creating tasks after this long, flood done or not


def accounts_needed(pace: float) -> int:
    return ALONE + int(MAX_SECONDS * pace) + 2


Progress = Callable[[str], None]


def _tasks_path() -> str:
    return ns_path(VICTIM_NAMESPACE, "agenttasks", GROUP, VERSION)


def prepare(kube: Kube, vault: Vault, env: dict[str, str], run_id: str, accounts: int) -> None:
    """The victim's namespace, Vault role, backend (same Vault address), credential and
    ``accounts`` ServiceAccounts (one per task, created before any timing)."""
    kube.apply(
        f"/api/v1/namespaces/{VICTIM_NAMESPACE}",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": VICTIM_NAMESPACE, "labels": {RUN_LABEL: run_id}},
        },
    )
    for _ in range(600):
        if kube.get(f"/api/v1/namespaces/{VICTIM_NAMESPACE}/serviceaccounts/default"):
            break
        time.sleep(0.1)
    vault.write(
        f"auth/kubernetes/role/{VICTIM_ROLE}",
        {
            "bound_service_account_names": ["*"],
            "bound_service_account_namespaces": [VICTIM_NAMESPACE],
            "audience": "vault",
            "token_policies": [POLICY],
            "token_ttl": "2h",
            "token_max_ttl": "4h",
        },
    )
    kube.apply(
        f"/apis/{GROUP}/{VERSION}/credentialbackends/{VICTIM_BACKEND}",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CredentialBackend",
            "metadata": {"name": VICTIM_BACKEND, "labels": {RUN_LABEL: run_id}},
            "spec": {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": VICTIM_NAMESPACE}
                },
                "allowInsecureHTTP": True,
                "maxTTL": "4h",
                "vault": {
                    "address": env["VAULT_ADDR"],
                    "auth": {"kubernetes": {"mount": "kubernetes", "audience": "vault"}},
                    "allowedPaths": ["database/creds/readonly"],
                },
            },
        },
    )
    kube.apply(
        f"{ns_path(VICTIM_NAMESPACE, 'agentcredentials', GROUP, VERSION)}/{VICTIM_CREDENTIAL}",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentCredential",
            "metadata": {"name": VICTIM_CREDENTIAL, "labels": {RUN_LABEL: run_id}},
            "spec": {
                "backendRef": {"name": VICTIM_BACKEND},
                "vault": {"role": VICTIM_ROLE, "dynamic": {"path": "database/creds/readonly"}},
                "ttl": "60s",
                "renewalPercent": 20,
            },
        },
    )
    path = ns_path(VICTIM_NAMESPACE, "serviceaccounts")

    def account(i: int) -> None:
        try:
            kube.create(path, {"metadata": {"name": f"victim-{i:05d}"}})
        except KubeError as exc:
            if exc.status != 409:
                raise

    parallel(account, range(accounts))


def teardown(kube: Kube, vault: Vault, timeout: float = 120) -> list[str]:
    """Remove the victim's side (deleting its tasks first, so the operator revokes their
    leases, when it runs); returns what failed."""
    failed: list[str] = []

    def step(what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:  # the next steps still run
            failed.append(f"victim: {what}: {type(exc).__name__}: {exc}")

    def names() -> list[str]:
        return [t["metadata"]["name"] for t in kube.list_items(_tasks_path())]

    def delete_tasks() -> None:
        parallel(lambda n: kube.delete(f"{_tasks_path()}/{n}"), names())
        deadline = time.monotonic() + timeout
        while names() and time.monotonic() < deadline:
            time.sleep(1)

    def unblock() -> None:
        parallel(
            lambda n: kube.merge_patch(f"{_tasks_path()}/{n}", {"metadata": {"finalizers": None}}),
            names(),
        )

    if kube.get(f"/api/v1/namespaces/{VICTIM_NAMESPACE}"):
        step("deleting tasks", delete_tasks)
        step("removing finalizers", unblock)
        step(
            "deleting the namespace", lambda: kube.delete(f"/api/v1/namespaces/{VICTIM_NAMESPACE}")
        )
    step(
        "deleting the backend",
        lambda: kube.delete(f"/apis/{GROUP}/{VERSION}/credentialbackends/{VICTIM_BACKEND}"),
    )
    step(
        "deleting the Vault role",
        lambda: vault.call("DELETE", f"auth/kubernetes/role/{VICTIM_ROLE}"),
    )
    return failed


@dataclass
class Renewals:
    """Watches the victim's leases by polling its tasks (a renewal shows as a higher
    ``renewals`` count or a new ``issuedAt``)."""

    kube: Kube
    seen: dict[str, tuple[int, str, datetime.datetime | None, datetime.datetime | None]] = field(
        default_factory=dict
    )  # task -> (renewals, issuedAt, renewAt, expiresAt) last seen
    delays: list[float] = field(default_factory=list)  # renewal seen - its renewAt
    margins: list[float] = field(default_factory=list)  # its expiresAt - renewal seen
    expired_seen: set[str] = field(default_factory=set)  # Active past expiresAt
    missed: list[str] = field(default_factory=list)  # polls that failed
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="victim-renewals", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                items = list(self.kube.list_items(_tasks_path()))
            except Exception as exc:  # a missed look is one less sample, not a failed run
                self.missed.append(f"{type(exc).__name__}: {exc}")
                continue
            now = datetime.datetime.now(datetime.UTC)
            for item in items:
                self._look(item, now)

    def _look(self, item: dict[str, Any], now: datetime.datetime) -> None:
        status = item.get("status") or {}
        entries = status.get("credentials") or []
        if status.get("phase") != "Active" or not entries:
            return
        name, entry = item["metadata"]["name"], entries[0]
        current = (
            int(entry.get("renewals") or 0),
            str(entry.get("issuedAt") or ""),
            parse_time(entry.get("renewAt")),
            parse_time(entry.get("expiresAt")),
        )
        before = self.seen.get(name)
        self.seen[name] = current
        if current[3] is not None and now > current[3]:
            self.expired_seen.add(name)
        if before is None or current[:2] == before[:2]:
            return
        planned, expiry = before[2], before[3]
        if planned is not None:
            self.delays.append(max(0.0, (now - planned).total_seconds()))
        if expiry is not None:
            self.margins.append((expiry - now).total_seconds())

    def result(self) -> dict[str, Any]:
        return {
            "renewals_seen": len(self.delays),
            "delay_after_renew_at": summary(self.delays),
            "margin_to_expiry": summary(self.margins),
            "renewed_after_expiry": sum(1 for m in self.margins if m < 0),
            "seen_active_past_expiry": len(self.expired_seen),
            "polls_missed": len(self.missed),
        }


def _s(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}s"


def run(
    kube: Kube,
    workload: Workload,
    flood_recorder: SecretRecorder,
    flood_size: int,
    progress: Progress,
    *,
    pace: float = 1.0,
    min_victims: int = 20,
    timeout: float = MAX_SECONDS,
) -> dict[str, Any]:
    """Run the scenario (the victim's side prepared, ``flood_recorder`` watching the bench
    namespace's Secrets); returns its figures."""
    recorder = SecretRecorder(kube, VICTIM_NAMESPACE)
    recorder.start()
    victims: dict[str, float] = {}  # task -> when our create returned
    counter = iter(range(1_000_000))

    def victim(prefix: str) -> str:
        i = next(counter)
        name = f"{prefix}-{i:05d}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentTask",
            "metadata": {"name": name, "labels": {RUN_LABEL: workload.run_id}},
            "spec": {
                "serviceAccountName": f"victim-{i:05d}",
                "credentials": [{"name": VICTIM_CREDENTIAL}],
                "activeDeadlineSeconds": DEADLINE_SECONDS,
            },
        }
        kube.create(_tasks_path(), body)
        victims[name] = time.monotonic()
        return name

    def latencies(names: list[str]) -> list[float]:
        return [recorder.added[n] - victims[n] for n in names if n in recorder.added]

    try:
        # Alone: the baseline, one a second with nothing else going on.
        alone = []
        for _ in range(ALONE):
            started = time.monotonic()
            alone.append(victim("alone"))
            time.sleep(max(0.0, 1 / pace - (time.monotonic() - started)))
        recorder.wait(lambda: all(n in recorder.added for n in alone), 60)
        alone_latency = summary(latencies(alone))
        progress(
            f"fairness: victim alone p50 {_s(alone_latency['p50'])} p99 {_s(alone_latency['p99'])}"
        )

        identities = workload.identities(flood_size)  # before any timing
        flood_names = [f"fairness-flood-{i:05d}" for i in range(flood_size)]
        flood_created: dict[str, float] = {}
        renewals = Renewals(kube)
        renewals.start()
        flood_done = threading.Event()

        def flood() -> None:
            def one(pair: tuple[str, Any]) -> None:
                try:
                    workload.create_task(pair[0], pair[1], "fairness-flood")
                except Exception as exc:  # counted below as a missing Secret
                    progress(f"fairness: create {pair[0]} failed: {exc}")
                    return
                flood_created[pair[0]] = time.monotonic()

            parallel(one, list(zip(flood_names, identities, strict=True)))
            flood_done.set()

        started = time.monotonic()
        threading.Thread(target=flood, name="flood", daemon=True).start()
        during: list[str] = []
        next_at = started + 1 / pace
        while time.monotonic() - started < timeout:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += 1 / pace
            during.append(victim("during"))
            flood_finished = flood_done.is_set() and all(
                n in flood_recorder.added for n in flood_created
            )
            if flood_finished and len(during) >= min_victims:
                break
            if len(during) % 5 == 0:
                progress(
                    f"fairness: {flood_recorder.count_added(flood_names)}/{flood_size} flood "
                    f"Secrets, {recorder.count_added(during)}/{len(during)} victim Secrets after "
                    f"{time.monotonic() - started:.0f}s"
                )
        flood_seconds = max(flood_recorder.added.values(), default=started) - started
        recorder.wait(lambda: all(n in recorder.added for n in during), 60)
        # Look at renewals a little longer: every victim lease renews every 6-12 s.
        time.sleep(15)
        renewals.stop()
        flood_latency = [
            flood_recorder.added[n] - t
            for n, t in flood_created.items()
            if n in flood_recorder.added
        ]
        result: dict[str, Any] = {
            "scenario": "fairness",
            "flood_tasks": flood_size,
            "flood_secrets": len(flood_latency),
            "flood_seconds": flood_seconds,
            "flood_latency": summary(flood_latency),
            "victim_pace_per_second": pace,
            "victim_alone": alone_latency,
            "victim_tasks": len(during),
            "victim_secrets": len(latencies(during)),
            "victim_latency": summary(latencies(during)),
            # In creation order: which of them waited (the flood's first seconds or later).
            "victim_latencies": [round(x, 3) for x in latencies(during)],
            "victim_renewals": renewals.result(),
        }
    finally:
        recorder.stop()
    lat, ren = result["victim_latency"], result["victim_renewals"]
    progress(
        f"fairness: flood of {flood_size} done in {flood_seconds:.1f}s; victim's "
        f"{result['victim_secrets']}/{len(during)} tasks to Secret p50 {_s(lat['p50'])} "
        f"p99 {_s(lat['p99'])} (alone p50 {_s(alone_latency['p50'])}); "
        f"{ren['renewals_seen']} renewals seen, delay after renewAt "
        f"p99 {_s(ren['delay_after_renew_at']['p99'])}, "
        f"{ren['renewed_after_expiry']} after expiry, "
        f"{ren['seen_active_past_expiry']} seen Active past expiry; in creation order: "
        + " ".join(f"{x:.2f}" for x in result["victim_latencies"])
    )
    return result
