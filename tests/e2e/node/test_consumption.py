"""Real pods consume the generated Secrets, the way users' pods do, on a real kubelet, with
the operator running in-cluster: ``env`` into a Job that logs in to PostgreSQL, a volume
that follows a rotated KV value, a Job whose completion (a phase the kubelet reported)
ends its task, and a running pod whose deletion revokes."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from agentcred.models.api_names import Reason
from support import postgres, vault
from support.kube import wait_for
from support.node import NodeScenario, task_label, unique

pytestmark = pytest.mark.e2e

LOGIN = 'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -tAc "select current_user" > /dev/termination-log'


def env_from(secret: str, key: str, name: str) -> dict[str, object]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def test_a_job_logs_in_with_database_url_from_env_and_its_completion_ends_the_task(
    node_scenario: NodeScenario, testbed_env: dict[str, str]
) -> None:
    scene = node_scenario
    task, labels, data = scene.db_task_bound_to_pods()

    scene.run_job(
        "migrate",
        labels,
        LOGIN,
        container={"env": [env_from(f"{task}-research-db", "DATABASE_URL", "DATABASE_URL")]},
    )
    job = wait_for(
        lambda: (j := scene.batch.read_namespaced_job("migrate", scene.ns)).status.succeeded and j,
        120,
        "Job migrate succeeded",
        describe=scene.describe_pods,
    )
    assert job.status.succeeded == 1
    (pod,) = scene.job_pods("migrate")
    terminated = pod.status.container_statuses[0].state.terminated
    # psql printed who it logged in as: the user Vault created for this task.
    assert terminated.exit_code == 0
    assert terminated.message.strip() == data["username"]

    # The kubelet reported the pod Succeeded; that alone ends the task.
    final = scene.wait_phase(task, "Succeeded", timeout=60)
    assert final["completionTime"]
    wait_for(lambda: not postgres.role_exists(testbed_env, data["username"]), 30, "role dropped")
    assert not postgres.can_login(testbed_env, data["username"], data["password"])


def test_a_volume_sees_a_rotated_kv_value(
    node_scenario: NodeScenario, testbed_env: dict[str, str]
) -> None:
    scene = node_scenario
    account = scene.service_account("llm-agent")
    role = vault.kubernetes_role(testbed_env, scene.ns, account)
    path = f"{scene.ns}/llm"
    admin = vault.admin(testbed_env)
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    scene.values.update({first, second})
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": first})
    scene.credential(
        "llm",
        backend=scene.vault_backend(),
        vault={"role": role, "kv": {"mount": "secret", "path": path}},
        refreshInterval="10s",
    )
    task = unique("chat")
    labels = task_label(task)
    scene.task(task, ["llm"], serviceAccountName=account, podSelector={"matchLabels": labels})
    scene.wait_phase(task, "Active", timeout=60)

    # The pod reads the mounted file until it changes, then reports the new value's digest
    # (never the value) and exits.
    watch = (
        "first=$(cat /creds/api_key); "
        'while [ "$(cat /creds/api_key)" = "$first" ]; do sleep 1; done; '
        "sha256sum /creds/api_key | cut -d' ' -f1 > /dev/termination-log"
    )
    scene.run_pod(
        "reader",
        labels,
        watch,
        restartPolicy="Never",
        volumes=[{"name": "creds", "secret": {"secretName": f"{task}-llm"}}],
        container={"volumeMounts": [{"name": "creds", "mountPath": "/creds", "readOnly": True}]},
    )
    scene.wait_pod_phase("reader", "Running", timeout=90)
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": second})

    pod = scene.wait_pod_phase("reader", "Succeeded", timeout=120)
    message = pod.status.container_statuses[0].state.terminated.message.strip()
    assert message == hashlib.sha256(second.encode()).hexdigest()
    assert message != hashlib.sha256(first.encode()).hexdigest()


def test_deleting_a_running_pod_revokes_its_credentials(
    node_scenario: NodeScenario, testbed_env: dict[str, str]
) -> None:
    scene = node_scenario
    task, labels, data = scene.db_task_bound_to_pods()

    # A long-running agent, holding a PostgreSQL session open with its credential.
    scene.run_pod(
        "agent",
        labels,
        'psql "$DATABASE_URL" -tAc "select pg_sleep(600)"',
        container={"env": [env_from(f"{task}-research-db", "DATABASE_URL", "DATABASE_URL")]},
    )
    scene.wait_pod_phase("agent", "Running", timeout=90)
    wait_for(
        lambda: postgres.role_exists(testbed_env, data["username"]), 10, "the agent's role exists"
    )
    scene.core.delete_namespaced_pod("agent", scene.ns)

    final = scene.wait_phase(task, "Failed", timeout=90)
    assert any(c.get("reason") == Reason.PODS_DELETED for c in final.get("conditions") or []), final
    wait_for(lambda: not postgres.role_exists(testbed_env, data["username"]), 30, "role dropped")
    assert not postgres.can_login(testbed_env, data["username"], data["password"])
