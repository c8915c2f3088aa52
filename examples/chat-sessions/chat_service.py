"""A chat-session agent service: every session runs under its own AgentTask.

A session gets its own PostgreSQL user (Vault's database engine, through the operator,
valid 5 minutes), answers questions with it, and ends its task when it ends: the user is
dropped before ``DELETE /sessions/<id>`` returns. The "agent" is a scripted
question -> SQL step (``QUESTIONS``); put your model where ``to_sql`` is (README.md says
why this example has no LLM).

    POST   /sessions                 -> {"session", "task"}     (once its credentials are issued)
    POST   /sessions/<id>/questions  {"question": "..."} -> {"sql", "columns", "rows"}
    DELETE /sessions/<id>            -> {"session", "task", "ended": true} (once revoked)
    GET    /healthz

Runs in the agent's own pod as ServiceAccount ``chat-agent`` (chat-sessions.yaml gives it
the Role agentcred_client needs and nothing more). Settings from the environment:
``CREDENTIAL`` (the AgentCredential, ``chat-db``), ``SERVICE_ACCOUNT`` (the pod's, from the
downward API), ``SESSION_SECONDS`` (300), ``PORT`` (8080); ``OTEL_EXPORTER_OTLP_ENDPOINT``
turns on traces (each session's span, continued by the operator).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from aiohttp import web

from agentcred_client import AgentTaskError, AgentTasks, TaskFailed, TaskTimeout

log = logging.getLogger("chat-sessions")

SESSION_LABEL = "agentcred.example/session"


class UnknownQuestion(ValueError):
    """The scripted agent has no SQL for this question."""


# The scripted agent: a question matching the pattern is answered by the SQL beside it.
QUESTIONS: Sequence[tuple[str, str]] = (
    (r"\bwho am i\b|\bwhich (database )?user\b", "SELECT current_user AS database_user"),
    (
        r"\bhow many claims\b.*\bmay\b",
        "SELECT count(*) AS claims FROM claims WHERE filed_on >= DATE '2026-05-01' "
        "AND filed_on < DATE '2026-06-01'",
    ),
    (
        r"\bwhich region\b",
        "SELECT region, count(*) AS claims FROM claims GROUP BY region "
        "ORDER BY claims DESC, region LIMIT 1",
    ),
    (r"\bhow many claims\b", "SELECT count(*) AS claims FROM claims"),
)


def to_sql(question: str) -> str:
    """The agent's step from a question to one read-only query."""
    text = question.lower()
    for pattern, sql in QUESTIONS:
        if re.search(pattern, text):
            return sql
    raise UnknownQuestion(question)


class Cursor(Protocol):
    description: Sequence[Any] | None

    async def fetchall(self) -> list[tuple[Any, ...]]: ...


class Connection(Protocol):
    async def execute(self, query: str) -> Cursor: ...

    async def close(self) -> None: ...


Connect = Callable[[str, str], Awaitable[Connection]]  # (DATABASE_URL, application_name)


async def psycopg_connect(url: str, application_name: str) -> Connection:
    import psycopg  # noqa: PLC0415 - the service's own dependency, not the client's

    conn = await psycopg.AsyncConnection.connect(
        url, application_name=application_name, autocommit=True, connect_timeout=10
    )
    return cast("Connection", conn)


@dataclass(frozen=True)
class Settings:
    credential: str = "chat-db"
    service_account: str = "chat-agent"
    session_seconds: int = 300

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            credential=os.environ.get("CREDENTIAL", cls.credential),
            service_account=os.environ.get("SERVICE_ACCOUNT", cls.service_account),
            session_seconds=int(os.environ.get("SESSION_SECONDS", cls.session_seconds)),
        )


Question = tuple[str, "asyncio.Future[dict[str, Any]]"]


@dataclass
class Session:
    """One chat session: its task and database connection live in ``runner``, which
    answers questions from ``inbox`` until it gets ``None`` or the session's time is up."""

    id: str
    started: asyncio.Future[str] = field(default_factory=asyncio.Future)  # the task's name
    inbox: asyncio.Queue[Question | None] = field(default_factory=asyncio.Queue)
    runner: asyncio.Task[None] | None = None
    task: str = ""


async def _answer(conn: Connection, question: str) -> dict[str, Any]:
    sql = to_sql(question)
    cursor = await conn.execute(sql)
    rows = await cursor.fetchall()
    columns = [c[0] for c in cursor.description or []]
    return {"sql": sql, "columns": columns, "rows": [list(r) for r in rows]}


async def run_session(
    tasks: AgentTasks, settings: Settings, session: Session, connect: Connect
) -> None:
    """The session's whole life: its AgentTask (its span, its credentials), one database
    connection as its own user, the questions, then the end (task completed, everything
    revoked before this returns)."""
    deadline = time.monotonic() + settings.session_seconds
    try:
        async with tasks.arun(
            [settings.credential],
            settings.service_account,
            deadline_seconds=settings.session_seconds,  # a hard stop even if we die
            labels={SESSION_LABEL: session.id},
            correlation_id=session.id,  # one id in our logs, the audit lines, Vault's
            wait_revoked=True,  # leaving returns once the database user is dropped
        ) as t:
            session.task = t.name
            conn = await connect(t.env["DATABASE_URL"], f"chat-{session.id}")
            try:
                session.started.set_result(t.name)
                log.info("session %s: task %s active", session.id, t.name)
                await _serve(conn, session, deadline)
            finally:
                await conn.close()
    except BaseException as exc:
        if not session.started.done():
            session.started.set_exception(exc)
        raise
    finally:
        log.info("session %s: ended (task %s)", session.id, session.task or "-")


async def _serve(conn: Connection, session: Session, deadline: float) -> None:
    while True:
        try:
            item = await asyncio.wait_for(session.inbox.get(), deadline - time.monotonic())
        except TimeoutError:
            log.info("session %s: its time is up", session.id)
            return
        if item is None:
            return
        question, reply = item
        try:
            reply.set_result(await _answer(conn, question))
        except Exception as exc:  # one bad question does not end the session
            reply.set_exception(exc)


class Service:
    """The HTTP face: sessions by id."""

    def __init__(
        self, tasks: AgentTasks, settings: Settings, connect: Connect = psycopg_connect
    ) -> None:
        self.tasks, self.settings, self.connect = tasks, settings, connect
        self.sessions: dict[str, Session] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_post("/sessions", self.start)
        app.router.add_post("/sessions/{id}/questions", self.ask)
        app.router.add_delete("/sessions/{id}", self.end)
        app.on_shutdown.append(self._end_all)
        return app

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"sessions": len(self.sessions)})

    async def start(self, _: web.Request) -> web.Response:
        session = Session(str(uuid.uuid4()))
        session.runner = asyncio.create_task(
            run_session(self.tasks, self.settings, session, self.connect)
        )
        self.sessions[session.id] = session
        try:
            task = await session.started
        except Exception as exc:
            self.sessions.pop(session.id, None)
            await asyncio.gather(session.runner, return_exceptions=True)
            return _refused(session, exc)
        return web.json_response({"session": session.id, "task": task}, status=201)

    async def ask(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None or session.runner is None or session.runner.done():
            return _error(404, "no such session (ended or expired)")
        body = await request.json()
        question = str(body.get("question", ""))
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await session.inbox.put((question, reply))
        try:
            return web.json_response(await reply, dumps=_dumps)
        except UnknownQuestion:
            known = [p for p, _ in QUESTIONS]
            return _error(422, f"the scripted agent knows no SQL for that; it knows {known}")
        except Exception as exc:
            return _error(500, f"the query failed: {type(exc).__name__}")

    async def end(self, request: web.Request) -> web.Response:
        session = self.sessions.pop(request.match_info["id"], None)
        if session is None or session.runner is None:
            return _error(404, "no such session")
        await session.inbox.put(None)
        try:
            await session.runner
        except AgentTaskError as exc:  # e.g. not revoked in time
            return _error(500, f"the session's task did not end cleanly: {exc}")
        except Exception as exc:
            return _error(500, f"the session did not end cleanly: {type(exc).__name__}")
        return web.json_response({"session": session.id, "task": session.task, "ended": True})

    async def _end_all(self, _: web.Application) -> None:
        for session in list(self.sessions.values()):
            await session.inbox.put(None)
        await asyncio.gather(
            *(s.runner for s in self.sessions.values() if s.runner), return_exceptions=True
        )


def _refused(session: Session, exc: Exception) -> web.Response:
    if isinstance(exc, TaskFailed):
        return _error(403, f"no credentials for this session: {exc.reason}: {exc.message}")
    if isinstance(exc, TaskTimeout):
        return _error(504, "the operator did not issue the credentials in time")
    log.warning("session %s could not start: %s", session.id, type(exc).__name__)
    return _error(503, f"the session could not start: {type(exc).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)  # dates and numerics as text


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def configure_tracing() -> None:
    """Export spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set: each session's
    ``agentcred.task`` span and, continuing it, the operator's issue and revoke."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    # The SDK and exporter are imported only when tracing is on.
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    name = os.environ.get("OTEL_SERVICE_NAME", "chat-sessions")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    configure_tracing()
    service = Service(AgentTasks(), Settings.from_env())  # the pod's namespace and token
    web.run_app(service.app(), port=int(os.environ.get("PORT", "8080")), print=None)


if __name__ == "__main__":
    main()
