"""Helpers for the suites on the testbed node (tests/e2e/node): the in-cluster operator's
pods and leader, their processes on the host, pods that consume generated Secrets the way
users' pods do, and a Scenario whose backend the in-cluster operator can reach."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import OPERATOR_POD, Label
from agentcred_testbed import incluster, node
from support import vault
from support.kube import wait_for
from support.scenario import Scenario

NAMESPACE = incluster.NAMESPACE
OPERATOR_LABELS = ",".join(f"{k}={v}" for k, v in OPERATOR_POD.items())


def operator_pods(api: client.ApiClient) -> list[Any]:
    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=OPERATOR_LABELS)
    return [p for p in pods.items if p.metadata.deletion_timestamp is None]


def leader_pod(api: client.ApiClient, env: dict[str, str]) -> Any:
    """The operator pod holding the leader Lease (a holder that is no pod of now, such as
    a replica removed without a kubelet to stop it, is waited out)."""

    def holder_pod() -> Any:
        holder = incluster.leader(env) or ""
        return next(
            (p for p in operator_pods(api) if holder.startswith(p.metadata.name + "_")), None
        )

    return wait_for(
        holder_pod,
        60,
        "a running operator pod holding the Lease",
        describe=lambda: incluster.leader(env),
    )


def container_pids(pod: Any, env: dict[str, str]) -> list[int]:
    """Host PIDs of a pod's app container (found through the node's cgroups)."""
    status = (pod.status.container_statuses or [])[0]
    container_id = (status.container_id or "").removeprefix("containerd://")
    assert container_id, f"pod {pod.metadata.name} has no running container"
    pids: set[int] = set()
    for procs_file in Path("/sys/fs/cgroup/pids").glob(
        f"agentcred-*/kubepods/**/{container_id}/cgroup.procs"
    ):
        pids.update(int(p) for p in procs_file.read_text().split())
    return sorted(pids)


def current_log(env: dict[str, str], pod: Any) -> str:
    """What this pod's (first) container has logged since it last started, and nothing else.

    The kubelet writes ``<namespace>_<name>_<uid>/<container>/<restart count>.log``; pod
    logs outlive the node (``make testbed-down``) and a pod object may outlive its
    containers, so another pod of the same name (an earlier ``make dev``) or an earlier
    run of this container would show in a glob over the pod's name."""
    meta, status = pod.metadata, (pod.status.container_statuses or [])[0]
    path = (
        Path(env["NODE_POD_LOGS"])
        / f"{meta.namespace}_{meta.name}_{meta.uid}"
        / status.name
        / f"{status.restart_count}.log"
    )
    return path.read_text(errors="replace") if path.exists() else ""


def operator_logs(env: dict[str, str]) -> str:
    return "\n".join(
        p.read_text(errors="replace")
        for p in Path(env["NODE_POD_LOGS"]).glob(f"{NAMESPACE}_agentcred-operator-*/*/*.log")
    )


TOLERATION = {"key": node.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def pod_spec(command: str, **extra: Any) -> dict[str, Any]:
    """A workload container (psql, sh) as a user's pod would run it: non-root, read-only."""
    container: dict[str, Any] = {
        "name": "agent",
        "image": node.WORKLOAD_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["/bin/sh", "-c", command],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePolicy": "File",
    }
    container.update(extra.pop("container", {}))
    return {
        "tolerations": [TOLERATION],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 2,
        "containers": [container],
        **extra,
    }


class NodeScenario(Scenario):
    """A Scenario whose backend is reached the way the in-cluster operator reaches it."""

    def __init__(self, api: client.ApiClient, namespace: str, env: dict[str, str]) -> None:
        super().__init__(api, namespace)
        self.env = env
        self.batch = client.BatchV1Api(api)

    def vault_backend(self) -> str:
        block = {
            "address": self.env["NODE_VAULT_ADDR"],
            "auth": {"kubernetes": {}},
            "allowedPaths": ["database/creds/*", "secret/data/*/*"],
        }
        return self.backend("vault", block)

    def db_credential(self, name: str, account: str) -> None:
        role = vault.kubernetes_role(self.env, self.ns, account)
        host, port = self.env["NODE_HOST_IP"], self.env["PGPORT"]
        url = "postgresql://{{ username }}:{{ password }}@" + f"{host}:{port}/app"
        self.credential(
            name,
            backend=self.vault_backend(),
            vault={"role": role, "dynamic": {"path": "database/creds/readonly"}},
            ttl="10m",
            template={"DATABASE_URL": url},
        )

    def db_task_bound_to_pods(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """``research-db`` for ServiceAccount ``research-agent``, and an Active task using it
        that is bound to the pods labelled for it: the task's name, that label and the
        values of its Secret ``<task>-research-db``."""
        account = self.service_account("research-agent")
        self.db_credential("research-db", account)
        task = unique("claim")
        labels = task_label(task)
        selector = {"matchLabels": labels}
        _, data = self.issue(task, "research-db", serviceAccountName=account, podSelector=selector)
        return task, labels, data

    def run_pod(self, name: str, labels: dict[str, str], command: str, **extra: Any) -> Any:
        return self.core.create_namespaced_pod(
            self.ns,
            {"metadata": {"name": name, "labels": labels}, "spec": pod_spec(command, **extra)},
        )

    def run_job(self, name: str, labels: dict[str, str], command: str, **extra: Any) -> Any:
        spec = pod_spec(command, restartPolicy="Never", **extra)
        return self.batch.create_namespaced_job(
            self.ns,
            {
                "metadata": {"name": name},
                "spec": {
                    "backoffLimit": 0,
                    "template": {"metadata": {"labels": labels}, "spec": spec},
                },
            },
        )

    def pod_phase(self, name: str) -> str | None:
        try:
            return str(self.core.read_namespaced_pod(name, self.ns).status.phase)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def wait_pod_phase(self, name: str, phase: str, timeout: float = 90) -> Any:
        return wait_for(
            lambda: self.pod_phase(name) == phase and self.core.read_namespaced_pod(name, self.ns),
            timeout,
            f"pod {name} phase {phase} (now {self.pod_phase(name)})",
        )

    def describe_pods(self) -> str:
        """Pods and Events of the namespace, for a failure message (no Secret data)."""
        pods = [
            (p.metadata.name, p.status.phase, [c.state for c in p.status.container_statuses or []])
            for p in self.core.list_namespaced_pod(self.ns).items
        ]
        events = [(e.involved_object.name, e.reason, e.message) for e in self.events()]
        return f"pods: {pods}; events: {events[-15:]}"

    def job_pods(self, job: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.ns, label_selector=f"job-name={job}").items)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def task_label(name: str) -> dict[str, str]:
    return {Label.TASK.value: re.sub(r"[^a-z0-9-]", "-", name)}
