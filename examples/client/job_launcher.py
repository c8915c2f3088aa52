"""A launcher that starts the agent as a Job bound to its AgentTask (docs/client.md,
"A Job bound to its task"): the Job is created suspended, the task owned by it and
selecting its pods, and the Job started once the credentials are issued. The task ends
when the pod finishes or the Job is deleted.

    python examples/client/job_launcher.py team-a registry.example/agent:1.4
"""

from __future__ import annotations

import sys

from agentcred_client import AgentTasks

namespace, image = sys.argv[1:3]
with AgentTasks(namespace=namespace) as tasks:
    launched = tasks.job(
        ["research-db"],
        image=image,
        command=["python", "-m", "agent"],
        service_account="research-agent",
        deadline_seconds=1800,
        mount_path="/var/run/agentcred",  # files follow re-issued credentials; env does not
        ttl_seconds_after_finished=600,
    )
print(f"Job and AgentTask {launched.namespace}/{launched.name}; Secrets {launched.secret_names}")
