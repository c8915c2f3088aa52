"""examples/chat-sessions/ in-process: the scripted question -> SQL step, the service's
sessions (each its own AgentTask, held open across requests, ended by DELETE; a refusal
is an HTTP error, not a session) against a stand-in for agentcred_client and the database,
and the example's Kubernetes objects (least privilege; what the testbed changes)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from agentcred_client import TaskFailed
from agentcred_testbed import chat_example

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    path = REPO / "examples" / "chat-sessions" / "chat_service.py"
    spec = importlib.util.spec_from_file_location("chat_service", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chat_service"] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


chat = _load()


@pytest.mark.parametrize(
    ("question", "needle"),
    [
        ("Who am I?", "current_user"),
        ("How many claims were filed in May?", "DATE '2026-05-01'"),
        ("which region grew fastest?", "GROUP BY region"),
        ("how many claims are there", "count(*) AS claims FROM claims"),
    ],
)
def test_the_scripted_agent_turns_questions_into_one_select(question: str, needle: str) -> None:
    sql = chat.to_sql(question)
    assert needle in sql
    assert sql.lstrip().upper().startswith("SELECT")


def test_a_question_it_has_no_sql_for_is_refused() -> None:
    with pytest.raises(chat.UnknownQuestion):
        chat.to_sql("drop the claims table")


@dataclass
class Handle:
    name: str
    env: dict[str, str]


@dataclass
class FakeTasks:
    """agentcred_client.AgentTasks.arun as the service uses it: records each session's
    task, its arguments and how it ended."""

    refuse: bool = False
    opened: list[dict[str, Any]] = field(default_factory=list)
    ended: dict[str, str] = field(default_factory=dict)  # task -> "completed" | exception

    @asynccontextmanager
    async def arun(
        self, credentials: Sequence[str], service_account: str, **options: Any
    ) -> AsyncIterator[Handle]:
        if self.refuse:
            raise TaskFailed("NotAllowed", "chat-agent may not have chat-db", name="t")
        name = f"agent-{len(self.opened)}"
        self.opened.append(
            {"credentials": list(credentials), "service_account": service_account, **options}
        )
        try:
            yield Handle(name, {"DATABASE_URL": f"postgresql://user-{name}:pw@db/app"})
        except BaseException as exc:
            self.ended[name] = type(exc).__name__
            raise
        self.ended[name] = "completed"


@dataclass
class FakeCursor:
    rows: list[tuple[Any, ...]]
    description: list[tuple[str]]

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


@dataclass
class FakeConnection:
    """Answers ``current_user`` with the user in its URL; records its application name."""

    url: str
    application_name: str
    closed: bool = False

    async def execute(self, query: str) -> FakeCursor:
        user = self.url.split("//", 1)[1].split(":", 1)[0]
        if "current_user" in query:
            return FakeCursor([(user,)], [("database_user",)])
        return FakeCursor([(4,)], [("claims",)])

    async def close(self) -> None:
        self.closed = True


def run(tasks: FakeTasks, scenario: Any) -> Any:
    connections: list[FakeConnection] = []

    async def connect(url: str, application_name: str) -> FakeConnection:
        connections.append(FakeConnection(url, application_name))
        return connections[-1]

    async def main() -> Any:
        service = chat.Service(tasks, chat.Settings(), connect)
        async with TestClient(TestServer(service.app())) as client:
            return await scenario(client, connections)

    return asyncio.run(main())


def test_two_sessions_each_under_its_own_task_until_they_end() -> None:
    tasks = FakeTasks()

    async def scenario(client: TestClient[Any, Any], connections: list[FakeConnection]) -> None:
        answers = await asyncio.gather(client.post("/sessions"), client.post("/sessions"))
        assert [a.status for a in answers] == [201, 201]
        opened = [await a.json() for a in answers]
        assert len({o["task"] for o in opened}) == 2
        users = []
        for o in opened:
            asked = await client.post(
                f"/sessions/{o['session']}/questions", json={"question": "who am i"}
            )
            users.append((await asked.json())["rows"][0][0])
        assert users == [f"user-{o['task']}" for o in opened]
        assert tasks.ended == {}  # both still open across requests
        first = opened[0]
        ended = await client.delete(f"/sessions/{first['session']}")
        assert await ended.json() == {
            "session": first["session"],
            "task": first["task"],
            "ended": True,
        }
        assert tasks.ended == {first["task"]: "completed"}
        assert [c.closed for c in connections].count(True) == 1
        gone = await client.post(f"/sessions/{first['session']}/questions", json={"question": "x"})
        assert gone.status == 404
        await client.delete(f"/sessions/{opened[1]['session']}")
        assert set(tasks.ended.values()) == {"completed"}
        assert {c.application_name for c in connections} == {f"chat-{o['session']}" for o in opened}

    run(tasks, scenario)
    for options in tasks.opened:
        assert options["credentials"] == ["chat-db"]
        assert options["service_account"] == "chat-agent"
        assert options["deadline_seconds"] == 300
        assert options["wait_revoked"] is True
        assert options["correlation_id"] == options["labels"][chat.SESSION_LABEL]


def test_a_bad_question_does_not_end_the_session() -> None:
    tasks = FakeTasks()

    async def scenario(client: TestClient[Any, Any], _: list[FakeConnection]) -> None:
        session = (await (await client.post("/sessions")).json())["session"]
        bad = await client.post(f"/sessions/{session}/questions", json={"question": "drop it"})
        assert bad.status == 422
        good = await client.post(f"/sessions/{session}/questions", json={"question": "who am i"})
        assert good.status == 200
        await client.delete(f"/sessions/{session}")

    run(tasks, scenario)
    assert list(tasks.ended.values()) == ["completed"]


def test_a_refused_session_is_an_error_and_no_session() -> None:
    async def scenario(client: TestClient[Any, Any], connections: list[FakeConnection]) -> None:
        refused = await client.post("/sessions")
        assert refused.status == 403
        assert "NotAllowed" in (await refused.json())["error"]
        assert (await (await client.get("/healthz")).json()) == {"sessions": 0}
        assert connections == []

    run(FakeTasks(refuse=True), scenario)


def test_a_session_ends_by_itself_when_its_time_is_up() -> None:
    tasks = FakeTasks()

    async def connect(url: str, application_name: str) -> FakeConnection:
        return FakeConnection(url, application_name)

    async def main() -> None:
        service = chat.Service(tasks, chat.Settings(session_seconds=0), connect)
        async with TestClient(TestServer(service.app())) as client:
            session = (await (await client.post("/sessions")).json())["session"]
            runner = service.sessions[session].runner
            assert runner is not None
            await asyncio.wait_for(runner, 5)  # ends without a DELETE
            late = await client.post(
                f"/sessions/{session}/questions", json={"question": "who am i"}
            )
            assert late.status == 404

    asyncio.run(main())
    assert list(tasks.ended.values()) == ["completed"]


def manifest() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(chat_example.MANIFEST.read_text()) if d]


def rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(doc["rules"], key=lambda r: (r["apiGroups"], r["resources"]))


def test_the_service_gets_the_role_the_client_docs_give_and_nothing_more() -> None:
    (role,) = [d for d in manifest() if d["kind"] == "Role"]
    documented = next(
        d
        for d in yaml.safe_load_all((REPO / "examples" / "client" / "rbac.yaml").read_text())
        if d and d["kind"] == "Role" and d["metadata"]["name"] == "agent-sessions"
    )
    for rule in documented["rules"]:  # the client docs' Role, for this ServiceAccount
        if "resourceNames" in rule:
            rule["resourceNames"] = [chat_example.SERVICE_ACCOUNT]
    assert rules(role) == rules(documented)
    (binding,) = [d for d in manifest() if d["kind"] == "RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": chat_example.SERVICE_ACCOUNT, "namespace": "chat"}
    ]
    kinds = sorted(d["kind"] for d in manifest())
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds


def test_the_credential_is_a_five_minute_database_user_for_the_service_only() -> None:
    (credential,) = [d for d in manifest() if d["kind"] == "AgentCredential"]
    assert credential["spec"]["ttl"] == "5m"
    assert credential["spec"]["serviceAccounts"] == [chat_example.SERVICE_ACCOUNT]
    assert "dynamic" in credential["spec"]["vault"]


def test_the_testbed_changes_only_where_things_are() -> None:
    docs = chat_example.documents(
        database="10.244.100.1:5555/app",
        namespace="t-1",
        backend="t-1-vault",
        vault_role="t-1-chat-agent",
        otlp_endpoint="http://10.244.100.1:4318",
    )
    assert "Namespace" not in [d["kind"] for d in docs]
    assert {d["metadata"]["namespace"] for d in docs} == {"t-1"}
    by = {d["kind"]: d for d in docs}
    spec = by["AgentCredential"]["spec"]
    assert spec["backendRef"] == {"name": "t-1-vault"}
    assert spec["vault"]["role"] == "t-1-chat-agent"
    assert spec["template"]["DATABASE_URL"].endswith("@10.244.100.1:5555/app")
    assert by["RoleBinding"]["subjects"][0]["namespace"] == "t-1"
    pod = by["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == chat_example.IMAGE
    assert container["imagePullPolicy"] == "Never"
    assert {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://10.244.100.1:4318"} in (
        container["env"]
    )
    assert "tolerations" not in pod  # an ordinary pod: make dev's node takes it
    own = chat_example.documents(database="h:1/app")
    assert own[0]["kind"] == "Namespace" and own[0]["metadata"]["name"] == "chat"
    # the example file itself is untouched by the substitutions
    assert "127.0.0.1:5432/app" in chat_example.MANIFEST.read_text()
