"""A launcher outside the cluster: one AgentTask per run of an agent command, which gets
the credentials as environment variables; the task ends with the command (Failed,
AgentReported, if it fails).

    python examples/client/launcher.py team-a research-agent research-db -- psql -c 'select 1'

Needs a kubeconfig whose user may create AgentTasks and impersonate the ServiceAccount
(examples/client/rbac.yaml, Role agent-launcher, or agentcred-tenant plus impersonate).
"""

from __future__ import annotations

import os
import subprocess
import sys

from agentcred_client import AgentTasks, TaskFailed


def main(argv: list[str]) -> int:
    namespace, account, credential, _, *command = argv
    with AgentTasks(namespace=namespace) as tasks:
        try:
            with tasks.run([credential], account, deadline_seconds=600, wait_revoked=True) as t:
                print(f"task {t.name} (session {t.correlation_id})", file=sys.stderr)
                # check=True: a failing command raises, so the task ends Failed with its message
                subprocess.run(command, env={**os.environ, **t.env}, check=True)
        except TaskFailed as refused:
            print(f"refused: {refused.reason}: {refused.message}", file=sys.stderr)
            return 2
        except subprocess.CalledProcessError as failed:
            return failed.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
