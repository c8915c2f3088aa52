"""No lease outlives its task: orphans are swept, and credentials die at their TTL
even while the operator is down."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from agentcred.backends.base import Identity, IssueRequest
from agentcred.backends.registry import BackendRegistry
from agentcred.backends.vault import VaultBackend
from agentcred.kube import client as kube_client
from agentcred.kube import secrets as kube_secrets
from agentcred.kube import tokens
from agentcred.models.resolved import parse_resolved
from agentcred.models.task import AgentTaskSpec, CredentialRef
from agentcred.services import lease_records
from agentcred.services.deps import Deps
from agentcred.services.task_view import TaskView
from agentcred.settings import Settings
from support import postgres
from support.credentials import DYNAMIC, own_db_role, vault_database
from support.kube import wait_for
from support.operator import operator_env, running_operator
from support.orphans import orphan_a_task
from support.scenario import Scenario

pytestmark = pytest.mark.e2e


def test_task_deleted_behind_the_operators_back_is_swept(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    account = vault_database(scene, testbed_env)
    env = operator_env(testbed_env)
    data, uid, _ = orphan_a_task(scene, testbed_env, tmp_path / "first.log", account)
    assert postgres.can_login(testbed_env, data["username"], data["password"])
    own = testbed_env["AGENTCRED_NAMESPACE"]
    assert scene.core.read_namespaced_secret(f"agentcred-session-{uid}", own) is not None

    with running_operator(env, tmp_path / "second.log", "--namespace", scene.ns):
        postgres.wait_refused(testbed_env, data, 30, "orphaned lease revoked by the sweep")
        wait_for(
            lambda: (
                scene.core.list_namespaced_secret(
                    own, label_selector=f"agentcred.io/task-namespace={scene.ns}"
                ).items
                == []
            ),
            30,
            "lease-record Secret removed",
        )


def test_lease_issued_but_never_recorded_is_found_and_revoked(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Reproduce the state an operator leaves when it dies right after issuing: the
    session is written (write-ahead), the lease exists, the task's status knows nothing
    and the task is gone."""
    account = vault_database(scene, testbed_env)
    role = scene.custom.get_namespaced_custom_object(
        "agentcred.io", "v1alpha1", scene.ns, "agentcredentials", "db"
    )["spec"]["vault"]["role"]
    spec_dict = {  # the credential resolved against its backend, as a lease record keeps it
        "allowInsecureHTTP": True,
        "vault": {
            "address": testbed_env["VAULT_ADDR"],
            "auth": {"kubernetes": {"role": role}},
            "dynamic": DYNAMIC,
        },
    }
    ghost = TaskView(
        namespace=scene.ns,
        name="ghost",
        uid="00000000-dead-beef-0000-000000000000",
        generation=1,
        created=datetime.datetime.now(datetime.UTC),
        spec=AgentTaskSpec(credentials=(CredentialRef("db"),)),
        status={},
    )
    data = asyncio.run(_issue_like_a_dying_operator(testbed_env, ghost, account, spec_dict))
    scene.values.update(data.values())
    assert postgres.can_login(testbed_env, data["username"], data["password"])

    with running_operator(operator_env(testbed_env), tmp_path / "op.log", "--namespace", scene.ns):
        postgres.wait_refused(testbed_env, data, 30, "unrecorded lease revoked by the sweep")
        assert not postgres.role_exists(testbed_env, data["username"])


async def _issue_like_a_dying_operator(
    env: dict[str, str], task: TaskView, account: str, spec_dict: dict[str, object]
) -> dict[str, str]:
    api = await kube_client.make_api_client()
    backend = VaultBackend()
    deps = Deps(
        api=api,
        backends=BackendRegistry(),
        settings=Settings(namespace=env["AGENTCRED_NAMESPACE"]),
    )
    try:

        async def token_for(audience: str) -> str:
            return await tokens.request_token(api, task.namespace, account, audience)

        async def secret_value(name: str, key: str) -> str:
            return await kube_secrets.read_secret_value(api, task.namespace, name, key)

        spec = parse_resolved(spec_dict)
        request = IssueRequest(
            credential="db",
            spec=spec,
            ttl=datetime.timedelta(minutes=10),
            correlation_id="t",
            identity=Identity(
                namespace=task.namespace,
                service_account=account,
                task=task.name,
                task_uid=task.uid,
                token_for=token_for,
                secret_value=secret_value,
            ),
        )
        session = await backend.login(request)
        await lease_records.put(
            deps,
            task,
            "db",
            lease_records.LeaseRecord(
                credential="db", backend="vault", spec=spec_dict, lease_id="", session=session
            ),
        )
        issued = await backend.issue_with(request, session)
        return dict(issued.data)
    finally:
        await backend.aclose()
        await api.close()


def test_credential_dies_at_its_ttl_while_the_operator_is_down(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # The Vault role caps every lease at 8 s.
    db_role = own_db_role(testbed_env, default_ttl="8s", max_ttl="8s")
    account = vault_database(scene, testbed_env, db_role=db_role)
    with running_operator(
        operator_env(testbed_env), tmp_path / "op.log", "--namespace", scene.ns
    ) as op:
        status, data = scene.issue("abandoned", "db", serviceAccountName=account)
        entry = status["credentials"][0]
        op.kill()
    expires = datetime.datetime.fromisoformat(entry["expiresAt"].replace("Z", "+00:00"))
    assert expires - datetime.datetime.now(datetime.UTC) <= datetime.timedelta(seconds=9)
    assert postgres.can_login(testbed_env, data["username"], data["password"])
    postgres.wait_refused(
        testbed_env, data, 30, "credential dead at its TTL with no operator running"
    )
    assert time.time() >= expires.timestamp() - 1


def test_a_namespace_deleted_while_no_operator_runs_goes_and_its_lease_is_revoked_later(
    kube: client.ApiClient, crds: None, testbed_env: dict[str, str], tmp_path: Path
) -> None:
    """No finalizer holds a task (issue 22): the namespace of an Active task deleted while
    no operator runs is gone, not Terminating for good; the lease its task held lives on
    at Vault until an operator comes back, whose first sweep revokes it (the lease
    record, in the operator's namespace, outlived the task)."""
    core = client.CoreV1Api(kube)
    ns = f"ns-deleted-while-down-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {"agentcred.io/test": "true"}}})
    scene = Scenario(kube, ns)
    own = testbed_env["AGENTCRED_NAMESPACE"]
    records = f"agentcred.io/task-namespace={ns}"
    try:
        account = vault_database(scene, testbed_env)
        env = operator_env(testbed_env)
        with running_operator(env, tmp_path / "first.log", "--namespace", ns) as first:
            scene.task("t", ["db"], serviceAccountName=account)
            scene.wait_phase("t", "Active")
            data = scene.read_secret("t-db")
            assert data is not None
            assert not (scene.get_task("t") or {})["metadata"].get("finalizers")
            first.kill()
        core.delete_namespace(ns)
        wait_for(lambda: _namespace_gone(core, ns), 60, "namespace gone (not Terminating)")
        assert postgres.can_login(testbed_env, data["username"], data["password"])
        assert core.list_namespaced_secret(own, label_selector=records).items  # the record

        with running_operator(env, tmp_path / "second.log", "--namespace", ns):
            postgres.wait_refused(testbed_env, data, 30, "revoked by the first sweep")
            wait_for(
                lambda: core.list_namespaced_secret(own, label_selector=records).items == [],
                30,
                "lease-record Secret removed",
            )
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(ns)
        core.delete_collection_namespaced_secret(own, label_selector=records)
        client.CustomObjectsApi(kube).delete_collection_cluster_custom_object(
            "agentcred.io",
            "v1alpha1",
            "credentialbackends",
            label_selector=f"agentcred.io/test-namespace={ns}",
        )


def _namespace_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except client.ApiException as exc:
        return exc.status == 404
    return False
