"""``job()``: a Job bound to its task; the sync face (``run``) on its private loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentcred.models.api_names import Reason
from agentcred_client import AgentTasks, TaskFailed
from client_fakes import NAMESPACE, ClientCalls, FakeKopf, cluster
from support.harness import Harness
from support.harness.objects import agent_credential, world

NO_TASK = world(task={"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "spare"}})


def test_job_creates_a_suspended_job_binds_the_task_to_it_then_starts_it() -> None:
    async def scenario() -> None:
        async with cluster(NO_TASK) as (h, _, tasks, calls):
            launched = await tasks.ajob(
                ["db"],
                image="agent:1",
                command=["python", "-m", "agent"],
                service_account="agent",
                name="j1",
                mount_path="/var/run/agentcred",
                env={"MODE": "batch"},
            )
            assert (launched.name, launched.task) == ("j1", "j1")
            assert launched.secret_names == {"db": "j1-db"}
            job = h.server.read("jobs", NAMESPACE, "j1")
            task = h.body("j1")
            assert job is not None and job["spec"]["suspend"] is False
            pod = job["spec"]["template"]
            assert pod["metadata"]["labels"] == {"agentcred.io/task": "j1"}
            container = pod["spec"]["containers"][0]
            assert container["envFrom"] == [{"secretRef": {"name": "j1-db"}}]
            assert container["env"] == [{"name": "MODE", "value": "batch"}]
            assert container["volumeMounts"] == [
                {"name": "agentcred-db", "mountPath": "/var/run/agentcred/db", "readOnly": True}
            ]
            assert pod["spec"]["serviceAccountName"] == "agent"
            assert (pod["spec"]["restartPolicy"], job["spec"]["backoffLimit"]) == ("Never", 0)
            assert task["metadata"]["ownerReferences"] == [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "j1",
                    "uid": job["metadata"]["uid"],
                    "blockOwnerDeletion": False,
                }
            ]
            assert task["spec"]["podSelector"] == {"matchLabels": {"agentcred.io/task": "j1"}}
            assert h.status("j1")["phase"] == "Active"
            assert calls[0] == ("create", "jobs", "") and calls[-1] == ("patch", "jobs", "")

    asyncio.run(scenario())


def test_job_whose_task_is_refused_is_deleted() -> None:
    objects = [*NO_TASK[:3], agent_credential(serviceAccounts=["someone-else"])]

    async def scenario() -> None:
        async with cluster(objects) as (h, _, tasks, _calls):
            with pytest.raises(TaskFailed) as refused:
                await tasks.ajob(["db"], image="agent:1", service_account="agent", name="j2")
            assert refused.value.reason == Reason.NOT_ALLOWED
            assert h.server.read("jobs", NAMESPACE, "j2") is None

    asyncio.run(scenario())


def test_run_works_from_synchronous_code() -> None:
    calls = ClientCalls()
    state: dict[str, Any] = {}
    tasks = AgentTasks(NAMESPACE, api=lambda: calls.api_for(state["h"])())  # noqa: PLW0108 - h is made later

    async def up() -> None:  # the fake cluster lives on the client's own loop thread
        h = state["h"] = await Harness(NO_TASK).__aenter__()
        kopf = state["kopf"] = FakeKopf(h)
        state["runner"] = asyncio.create_task(kopf.run())

    async def down() -> None:
        await state["kopf"].settle()
        state["runner"].cancel()
        await state["h"].__aexit__(None, None, None)

    tasks._runner.call(up())
    try:
        with pytest.raises(ValueError, match="boom"), tasks.run(["db"], "agent", name="s1") as t:
            assert t.env["username"].startswith("user-")
            raise ValueError("boom")
        tasks._runner.call(down())
        status = state["h"].status("s1")
        assert (status["phase"], status["reason"]) == ("Failed", Reason.AGENT_REPORTED)
        assert status["message"] == "ValueError: boom"
    finally:
        tasks.close()
