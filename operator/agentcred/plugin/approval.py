"""``kubectl agentcred approve TASK`` / ``deny TASK --reason``: create an AgentTaskApproval
as the user running the plugin (their kubeconfig, their RBAC; docs/approval.md).

The admission policies decide whether the user may approve (verb ``approve`` on the
CredentialBackend) and stamp the approver; the plugin only builds the object, finds the
backend the task waits for, and says what happened. Exit codes a script can use:
0 created, 1 refused by the API server (RBAC, admission: its message is printed),
2 usage, 3 the task does not exist or does not wait for approval from that backend.

``register(subparsers)`` adds both commands; each sets ``func`` (``args -> int``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import yaml

from agentcred.kube import approvals, resources
from agentcred.kube.client import make_api_client
from agentcred.kube.errors import KubeError, KubeForbidden, KubeInvalid
from agentcred.kube.kubeconfig import current_namespace
from agentcred.models.api_names import API_VERSION, Kind, Reason

OK, REFUSED, USAGE, NOT_WAITING = 0, 1, 2, 3


class Unusable(Exception):
    """The task cannot take this decision (exit code 3)."""


def register(subparsers: Any) -> None:
    """Add ``approve`` and ``deny`` to the plugin's argparse subcommands."""
    approve = subparsers.add_parser(
        "approve", help="approve an AgentTask that waits for approval (AwaitingApproval)"
    )
    _common(approve)
    approve.add_argument("--reason", default="", help="why (copied to the task and audit log)")
    approve.set_defaults(func=lambda args: run(args, "Approved"))
    deny = subparsers.add_parser("deny", help="deny an AgentTask that waits for approval")
    _common(deny)
    deny.add_argument("--reason", required=True, help="why (the task's user reads it)")
    deny.set_defaults(func=lambda args: run(args, "Denied"))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", metavar="TASK", help="the AgentTask's name")
    parser.add_argument("-n", "--namespace", default=None, help="the task's namespace")
    parser.add_argument(
        "--backend",
        default=None,
        help="the CredentialBackend decided for (default: the one the task waits for)",
    )
    parser.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    parser.add_argument("--as", dest="as_user", default=None, help="impersonate this user")


def run(args: argparse.Namespace, decision: str, out: TextIO | None = None) -> int:
    return asyncio.run(_run(args, decision, out or sys.stdout))


async def _run(args: argparse.Namespace, decision: str, out: TextIO) -> int:
    namespace = args.namespace or current_namespace()
    try:
        api = await make_api_client(pool_size=2)
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED
    if args.as_user:
        api.set_default_header("Impersonate-User", args.as_user)
    try:
        code, created = await decide(
            api, namespace, args.task, decision, args.reason or "", args.backend
        )
    except Unusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return NOT_WAITING
    except (KubeForbidden, KubeInvalid) as exc:
        print(f"error: refused: {server_message(exc) or exc}", file=sys.stderr)
        return REFUSED
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED
    finally:
        await api.close()
    print(render(created, args.output), file=out)
    return code


async def decide(
    api: Any, namespace: str, task: str, decision: str, reason: str, backend: str | None
) -> tuple[int, Mapping[str, Any]]:
    """Create the approval for ``task``; (exit code, the created object)."""
    body = await resources.get_task(api, namespace, task)
    if body is None:
        raise Unusable(f"AgentTask {namespace}/{task} not found")
    chosen = pick_backend(body, backend)
    created = await approvals.create(
        api, namespace, approval_body(task, namespace, chosen, decision, reason)
    )
    return OK, created


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


def render(created: Mapping[str, Any], output: str) -> str:
    """What the user sees: one line, or the object (never anything secret: it holds none)."""
    if output == "json":
        return json.dumps(created, indent=2, sort_keys=True)
    if output == "yaml":
        return yaml.safe_dump(dict(created), sort_keys=False).rstrip()
    meta, spec = created.get("metadata") or {}, created.get("spec") or {}
    return (
        f"agenttaskapproval {meta.get('namespace')}/{meta.get('name')} created: "
        f"{spec.get('decision')} {spec.get('taskRef', {}).get('name')} for CredentialBackend "
        f"{spec.get('credentialBackend')}"
    )


def server_message(exc: BaseException) -> str:
    """The API server's own message (an admission policy's, RBAC's) behind a Kube error."""
    body = getattr(exc.__cause__, "body", None)
    try:
        parsed = json.loads(body) if body else None
    except (TypeError, ValueError):
        return ""
    return str(parsed.get("message") or "") if isinstance(parsed, dict) else ""
