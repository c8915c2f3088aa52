"""An agent service in its own pod: every chat session runs under its own AgentTask with
short-lived database credentials, ended when the session ends. Runs as ServiceAccount
research-agent with examples/client/rbac.yaml's Role agent-sessions.

The "agent" here is a stand-in (one fixed query through psycopg); put your agent there.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import psycopg  # the agent's own dependency, not the client's

from agentcred_client import AgentTasks

log = logging.getLogger("agent")


async def serve_session(tasks: AgentTasks, question: str) -> str:
    session = str(uuid.uuid4())  # the same id in our logs and the operator's audit lines
    log.info("session %s: %s", session, question)
    async with (
        tasks.arun(
            ["research-db"],
            "research-agent",
            deadline_seconds=300,  # the credentials die with the session, or after 5 minutes
            labels={"agentcred.example/session": session[:8]},
            correlation_id=session,
        ) as t,
        await psycopg.AsyncConnection.connect(t.env["DATABASE_URL"]) as conn,
    ):
        cursor = await conn.execute("SELECT current_user")
        row = await cursor.fetchone()
        return f"answered as {row[0] if row else '?'}"


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    async with AgentTasks() as tasks:  # the pod's namespace and ServiceAccount
        answers = await asyncio.gather(
            serve_session(tasks, "how many claims in May?"),
            serve_session(tasks, "which region grew fastest?"),
        )
    for answer in answers:
        print(answer)


if __name__ == "__main__":
    asyncio.run(main())
