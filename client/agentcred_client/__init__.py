"""agentcred-client: run agent work under an agentcred AgentTask.

    from agentcred_client import AgentTasks
    tasks = AgentTasks(namespace="team-a")
    with tasks.run(credentials=["research-db"], service_account="research-agent") as t:
        url = t.env["DATABASE_URL"]

The guide is docs/client.md in the agentcred repository.
"""

from agentcred_client.errors import AgentTaskError, EnvConflict, TaskFailed, TaskTimeout
from agentcred_client.session import Task
from agentcred_client.tasks import AgentTasks, LaunchedJob

__all__ = [
    "AgentTaskError",
    "AgentTasks",
    "EnvConflict",
    "LaunchedJob",
    "Task",
    "TaskFailed",
    "TaskTimeout",
]
