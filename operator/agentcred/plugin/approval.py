"""``kubectl agentcred approve TASK`` / ``deny TASK --reason``: create an AgentTaskApproval
as the user running the plugin (their kubeconfig, their RBAC; docs/approval.md).

The admission policies decide whether the user may approve (verb ``approve`` on the
CredentialBackend) and stamp the approver; the plugin only builds the object, finds the
backend the task waits for, and says what happened. Exit codes (``main.py``): 0 created,
2 usage, 3 the task does not exist or does not wait for approval from that backend,
4 forbidden (by RBAC or by the admission policy: the API server's message is printed),
1 any other error.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from agentcred.models.api_names import API_VERSION, Kind, Reason
from agentcred.plugin.api import EXIT_NOT_FOUND, Api, PluginError


class Unusable(PluginError):
    """The task cannot take this decision (exit code 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_FOUND)


def register(commands: Any) -> None:
    """Add ``approve`` and ``deny`` to the plugin's commands."""
    approve = commands.add_parser(
        "approve", help="approve an AgentTask that waits for approval (AwaitingApproval)"
    )
    _common(approve)
    approve.add_argument("--reason", default="", help="why (copied to the task and audit log)")
    approve.set_defaults(run=approve_task)
    deny = commands.add_parser("deny", help="deny an AgentTask that waits for approval")
    _common(deny)
    deny.add_argument("--reason", required=True, help="why (the task's user reads it)")
    deny.set_defaults(run=deny_task)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", metavar="TASK", help="the AgentTask's name")
    parser.add_argument(
        "-n", "--namespace", default=None, help="its namespace (default: the context's)"
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="the CredentialBackend decided for (default: the one the task waits for)",
    )


async def approve_task(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    return await decide(api, args, "Approved")


async def deny_task(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    return await decide(api, args, "Denied")


async def decide(api: Api, args: argparse.Namespace, decision: str) -> tuple[Any, str]:
    """Create the approval for the task; (the created object, one line saying so)."""
    namespace = args.namespace or api.namespace
    task = await api.get_task(namespace, args.task)  # exit 3 when missing
    chosen = pick_backend(task, args.backend)
    body = approval_body(args.task, namespace, chosen, decision, args.reason or "")
    created = await api.create_approval(namespace, body)
    return created, describe(created) + "\n"


def pick_backend(task: Mapping[str, Any], requested: str | None) -> str:
    """The backend to decide for: ``requested``, or the one the task waits for."""
    status = task.get("status") or {}
    waiting = list((status.get("approval") or {}).get("backends") or [])
    name = (task.get("metadata") or {}).get("name")
    if status.get("reason") != Reason.AWAITING_APPROVAL:
        raise Unusable(
            f"AgentTask {name} does not wait for approval (phase {status.get('phase') or '-'}, "
            f"reason {status.get('reason') or '-'})"
        )
    if requested is not None:
        if requested not in waiting:
            raise Unusable(
                f"AgentTask {name} waits for approval from {', '.join(waiting) or 'no backend'}, "
                f"not {requested}"
            )
        return requested
    if len(waiting) != 1:
        raise Unusable(
            f"AgentTask {name} waits for approval from {', '.join(waiting) or 'no backend'}: "
            "say which with --backend"
        )
    return str(waiting[0])


def approval_body(
    task: str, namespace: str, backend: str, decision: str, reason: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "taskRef": {"name": task},
        "credentialBackend": backend,
        "decision": decision,
    }
    if reason:
        spec["reason"] = reason
    prefix = f"{task[:200]}-{decision.lower()}-"
    return {
        "apiVersion": API_VERSION,
        "kind": Kind.APPROVAL.value,
        "metadata": {"generateName": prefix, "namespace": namespace},
        "spec": spec,
    }


def describe(created: Mapping[str, Any]) -> str:
    """What the user sees by default: one line (an approval holds nothing secret)."""
    meta, spec = created.get("metadata") or {}, created.get("spec") or {}
    return (
        f"agenttaskapproval {meta.get('namespace')}/{meta.get('name')} created: "
        f"{spec.get('decision')} {spec.get('taskRef', {}).get('name')} for CredentialBackend "
        f"{spec.get('credentialBackend')}"
    )
