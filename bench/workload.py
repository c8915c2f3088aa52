"""What the benchmark asks of the operator: a namespace, agent identities, the Vault side,
a CredentialBackend, AgentCredentials and AgentTasks, in the shapes the README documents.

Two ways to give every task its own backend round trip (so that the operator and the
plain-script floor make the same calls):

* ``identity`` (default): every task runs as its own ServiceAccount and uses one shared
  AgentCredential on one KV secret. The operator's static-read cache is keyed by
  (namespace, identity, secret), so each task costs a TokenRequest, a Vault login and
  a read, exactly like the floor.
* ``credential``: one ServiceAccount, one AgentCredential and one KV secret per task
  (N AgentCredentials, each checked by the operator too).

The shared scenario runs every task as one ServiceAccount on one KV secret: one read
per refresh for all. Identities are never reused between scenarios (a reused one
would be served from the operator's cache). ``--credential database`` swaps the KV
secret for the testbed's dynamic PostgreSQL role (``database/creds/readonly``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentcred.models.api_names import GROUP, MANAGED_SELECTOR, VERSION, Label
from bench.kubeapi import Kube, KubeError, ns_path
from bench.vaultapi import Vault

NAMESPACE = "agentcred-bench"
BACKEND = "agentcred-bench-vault"
ROLE = "agentcred-bench"
POLICY = "agentcred-bench"
KV_PREFIX = "agentcred-bench"
SHARED_KV = f"{KV_PREFIX}/shared"
SHARED_SA = "agent"
SHARED_CREDENTIAL = "kv-shared"
RUN_LABEL = "bench.agentcred.io/run"
SCENARIO_LABEL = "bench.agentcred.io/scenario"
SECRET_SELECTOR = f"{MANAGED_SELECTOR},{Label.CREDENTIAL}"
SESSION_SELECTOR = f"{Label.SESSION}=true"
DEADLINE_SECONDS = 7200  # a task the benchmark forgot still ends by itself
REPO = Path(__file__).resolve().parents[1]
# Every CRD the operator watches, as the install applies them (a missing one leaves the
# operator's watch of it unserved: Kopf warns and the bench measures a smaller operator).
CRDS = tuple(
    Path(name).stem
    for name in yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text())["resources"]
)
THREADS = 16


@dataclass(frozen=True)
class Identity:
    service_account: str
    credential: str


def tasks_path() -> str:
    return ns_path(NAMESPACE, "agenttasks", GROUP, VERSION)


def task_path(name: str) -> str:
    return f"{tasks_path()}/{name}"


def parallel(fn: Callable[[Any], Any], items: Iterable[Any], threads: int = THREADS) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


class Workload:
    def __init__(
        self,
        kube: Kube,
        vault: Vault,
        env: dict[str, str],
        *,
        run_id: str,
        mode: str = "identity",
        credential: str = "kv",
        ttl: str = "1h",
        refresh: str = "1h",
        shared_refresh: str = "30s",
    ) -> None:
        self.kube, self.vault, self.env = kube, vault, env
        self.run_id, self.mode, self.kind = run_id, mode, credential
        self.ttl, self.refresh, self.shared_refresh = ttl, refresh, shared_refresh
        self._next = 0  # next unused identity index
        self.operator_namespace = env.get("AGENTCRED_NAMESPACE", "agentcred-system")

    # -- one-time setup ----------------------------------------------------------------

    def install_crds(self) -> None:
        for name in CRDS:
            doc = yaml.safe_load((REPO / "crds" / f"{name}.yaml").read_text())
            self.kube.apply(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{doc['metadata']['name']}",
                doc,
            )
        for name in CRDS:
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}.{GROUP}"
            for _ in range(100):
                crd = self.kube.get(path) or {}
                conditions = crd.get("status", {}).get("conditions", [])
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    break
                time.sleep(0.1)
        admission = REPO / "manifests" / "base" / "admission.yaml"
        plurals = {
            "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
            "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
        }
        for doc in yaml.safe_load_all(admission.read_text()):
            if doc and doc.get("kind") in plurals:
                base = f"/apis/{doc['apiVersion']}/{plurals[doc['kind']]}"
                self.kube.apply(f"{base}/{doc['metadata']['name']}", doc)

    def prepare(self) -> None:
        """Namespace, operator namespace, Vault role and policy, backend, shared credential."""
        self.install_crds()
        self._wait_namespace_gone()  # an earlier run's teardown may still be deleting it
        for name, labels in (
            (NAMESPACE, {"agentcred.io/tenant": "true", RUN_LABEL: self.run_id}),
            (self.operator_namespace, {}),
        ):
            self.kube.apply(
                f"/api/v1/namespaces/{name}",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels},
                },
            )
        self._wait_namespace_ready()
        rules = (
            f'path "secret/data/{KV_PREFIX}/*" {{ capabilities = ["read"] }}\n'
            'path "database/creds/readonly" { capabilities = ["read"] }\n'
        )
        self.vault.policy(POLICY, rules)
        self.vault.write(
            f"auth/kubernetes/role/{ROLE}",
            {
                "bound_service_account_names": ["*"],
                "bound_service_account_namespaces": [NAMESPACE],
                "audience": "vault",
                "token_policies": [POLICY],
                "token_ttl": "2h",
                "token_max_ttl": "4h",
            },
        )
        self.vault.kv_put(SHARED_KV, {"api_key": "bench-shared-value", "user": "bench"})
        self.kube.apply(
            f"/apis/{GROUP}/{VERSION}/credentialbackends/{BACKEND}",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "CredentialBackend",
                "metadata": {"name": BACKEND, "labels": {RUN_LABEL: self.run_id}},
                "spec": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
                    },
                    "allowInsecureHTTP": True,
                    "maxTTL": "4h",
                    "vault": {
                        "address": self.env["VAULT_ADDR"],
                        "auth": {"kubernetes": {"mount": "kubernetes", "audience": "vault"}},
                        "allowedPaths": ["database/creds/readonly", f"secret/data/{KV_PREFIX}/*"],
                    },
                },
            },
        )
        self.service_accounts([SHARED_SA])
        self.credentials([(SHARED_CREDENTIAL, SHARED_KV, self.shared_refresh)])
        if self.mode == "identity":
            self.credentials([(self.per_task_credential(), SHARED_KV, self.refresh)])

    def _wait_namespace_gone(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}")
            if not found or not found.get("metadata", {}).get("deletionTimestamp"):
                return
            time.sleep(1)

    def _wait_namespace_ready(self) -> None:
        for _ in range(600):
            if self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"):
                return
            time.sleep(0.1)

    def per_task_credential(self) -> str:
        return "db" if self.kind == "database" else "kv"

    def _credential_body(self, name: str, kv_path: str, refresh: str) -> dict[str, Any]:
        vault: dict[str, Any] = {"role": ROLE}
        if self.kind == "database" and name != SHARED_CREDENTIAL:
            vault["dynamic"] = {"path": "database/creds/readonly"}
        else:
            vault["kv"] = {"path": kv_path}
        spec: dict[str, Any] = {"backendRef": {"name": BACKEND}, "vault": vault, "ttl": self.ttl}
        if "kv" in vault:
            spec["refreshInterval"] = refresh
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentCredential",
            "metadata": {"name": name, "labels": {RUN_LABEL: self.run_id}},
            "spec": spec,
        }

    def credentials(self, specs: Sequence[tuple[str, str, str]]) -> None:
        path = ns_path(NAMESPACE, "agentcredentials", GROUP, VERSION)
        parallel(lambda s: self.kube.apply(f"{path}/{s[0]}", self._credential_body(*s)), specs)

    def service_accounts(self, names: Sequence[str]) -> None:
        path = ns_path(NAMESPACE, "serviceaccounts")

        def one(name: str) -> None:
            try:
                self.kube.create(path, {"metadata": {"name": name}})
            except KubeError as exc:
                if exc.status != 409:
                    raise

        parallel(one, names)

    def wait_credentials_ready(self, names: Sequence[str], timeout: float = 600) -> int:
        """Wait until the operator checked these AgentCredentials; returns how many are Ready."""
        wanted = set(names)
        path = ns_path(NAMESPACE, "agentcredentials", GROUP, VERSION)
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            ready, checked = 0, 0
            for item in self.kube.list_items(path):
                if item["metadata"]["name"] not in wanted:
                    continue
                conditions = (item.get("status") or {}).get("conditions") or []
                mine = [c for c in conditions if c.get("type") == "Ready"]
                checked += bool(mine)
                ready += any(c.get("status") == "True" for c in mine)
            if checked >= len(wanted):
                return ready
            time.sleep(1)
        return ready

    # -- identities --------------------------------------------------------------------

    def identities(self, count: int) -> list[Identity]:
        """``count`` identities never used before (created now, before any timing)."""
        start, self._next = self._next, self._next + count
        indexes = range(start, start + count)
        if self.mode == "identity":
            accounts = [f"agent-{i:05d}" for i in indexes]
            self.service_accounts(accounts)
            return [Identity(sa, self.per_task_credential()) for sa in accounts]
        creds = [f"{self.per_task_credential()}-{i:05d}" for i in indexes]
        if self.kind == "kv":
            parallel(
                lambda c: self.vault.kv_put(f"{KV_PREFIX}/{c}", {"api_key": f"value-{c}"}), creds
            )
        self.credentials([(c, f"{KV_PREFIX}/{c}", self.refresh) for c in creds])
        self.wait_credentials_ready(creds)
        return [Identity(SHARED_SA, c) for c in creds]

    def shared(self, count: int) -> list[Identity]:
        return [Identity(SHARED_SA, SHARED_CREDENTIAL)] * count

    def kv_path_of(self, identity: Identity) -> str:
        if identity.credential in (SHARED_CREDENTIAL, "kv"):
            return SHARED_KV
        return f"{KV_PREFIX}/{identity.credential}"

    # -- tasks -------------------------------------------------------------------------

    def task_body(self, name: str, identity: Identity, scenario: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentTask",
            "metadata": {
                "name": name,
                "labels": {RUN_LABEL: self.run_id, SCENARIO_LABEL: scenario},
            },
            "spec": {
                "serviceAccountName": identity.service_account,
                "credentials": [{"name": identity.credential}],
                "activeDeadlineSeconds": DEADLINE_SECONDS,
            },
        }

    def create_task(self, name: str, identity: Identity, scenario: str) -> None:
        self.kube.create(tasks_path(), self.task_body(name, identity, scenario))

    def complete_task(self, name: str) -> None:
        self.kube.merge_patch(task_path(name), {"spec": {"completed": True}})

    def tasks(self, scenario: str | None = None) -> list[dict[str, Any]]:
        selector = f"{SCENARIO_LABEL}={scenario}" if scenario else RUN_LABEL
        return list(self.kube.list_items(tasks_path(), selector=selector))

    def phases(self, scenario: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self.tasks(scenario):
            phase = (task.get("status") or {}).get("phase") or "None"
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def delete_tasks(self, names: Sequence[str], timeout: float) -> float:
        """Delete tasks (their finalizer revokes first); wait until gone; returns seconds."""
        started = time.monotonic()
        parallel(lambda n: self.kube.delete(task_path(n)), names)
        left = set(names)
        deadline = started + timeout
        while left and time.monotonic() < deadline:
            present = {t["metadata"]["name"] for t in self.tasks()}
            left &= present
            if left:
                time.sleep(1)
        return time.monotonic() - started

    def session_count(self) -> int:
        """Lease records (the write-ahead Vault token of each lease) in the operator's namespace."""
        path = ns_path(self.operator_namespace, "secrets")
        return sum(
            1 for _ in self.kube.list_items(path, selector=SESSION_SELECTOR, metadata_only=True)
        )

    # -- teardown ----------------------------------------------------------------------

    def teardown(self, *, operator_running: bool, timeout: float = 60) -> list[str]:
        """Remove everything the run created, even after a failure or Ctrl-C.

        With the operator still running, tasks are deleted first so its finalizer
        revokes what they hold; whatever is left after ``timeout`` (or with no
        operator) has its finalizer removed, then the namespace and backend go. Each
        step runs even if an earlier one failed; returns what failed."""
        failed: list[str] = []

        def step(what: str, fn: Callable[[], Any]) -> None:
            try:
                fn()
            except Exception as exc:  # the next steps still run
                failed.append(f"{what}: {type(exc).__name__}: {exc}")

        def delete_first() -> None:
            names = [t["metadata"]["name"] for t in self.tasks()]
            if names and operator_running:
                self.delete_tasks(names, timeout)

        def unblock() -> None:
            names = [t["metadata"]["name"] for t in self.tasks()]
            parallel(
                lambda n: self.kube.merge_patch(task_path(n), {"metadata": {"finalizers": None}}),
                names,
            )

        def kv() -> None:
            for key in self.vault.list_keys(f"secret/metadata/{KV_PREFIX}/"):
                self.vault.kv_delete_all(f"{KV_PREFIX}/{key}")

        def gone() -> None:
            deadline = time.monotonic() + 2 * timeout
            while time.monotonic() < deadline and self.kube.get(f"/api/v1/namespaces/{NAMESPACE}"):
                time.sleep(1)

        step("deleting tasks", delete_first)
        step("removing finalizers", unblock)
        step("deleting the namespace", lambda: self.kube.delete(f"/api/v1/namespaces/{NAMESPACE}"))
        step(
            "deleting the backend",
            lambda: self.kube.delete(f"/apis/{GROUP}/{VERSION}/credentialbackends/{BACKEND}"),
        )
        step("deleting KV secrets", kv)
        step("waiting for the namespace to go", gone)
        return failed
