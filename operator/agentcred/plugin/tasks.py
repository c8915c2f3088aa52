"""``kubectl agentcred renew TASK`` and ``end TASK``: act on one task as its user.

``renew`` stamps ``agentcred.io/renew-requested-at`` with the current time; the operator
renews (or re-reads) every credential of the task once per value. ``end`` sets
``spec.completed: true`` (the task Succeeds); ``--failed --reason R`` also sets
``spec.failureReason`` (the task Fails with that reason). Needs patch on agenttasks
(ClusterRole ``agentcred-tenant`` in the task's namespace).
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from agentcred.models.api_names import Annotation
from agentcred.plugin.api import Api
from agentcred.plugin.quarantine import UsageError


def register(commands: Any) -> None:
    renew = commands.add_parser("renew", help="renew or re-read a task's credentials now")
    renew.add_argument("task", help="the AgentTask's name")
    renew.add_argument("-n", "--namespace", help="its namespace (default: the context's)")
    renew.set_defaults(run=request_renewal)
    end = commands.add_parser("end", help="end a task now (Succeeded, or Failed with --failed)")
    end.add_argument("task", help="the AgentTask's name")
    end.add_argument("-n", "--namespace", help="its namespace (default: the context's)")
    end.add_argument("--failed", action="store_true", help="end it as Failed")
    end.add_argument("--reason", help="with --failed: why (spec.failureReason)")
    end.set_defaults(run=end_task)


def now_stamp() -> str:
    """A fresh value each time (microseconds): every request is a new value."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def request_renewal(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    namespace = args.namespace or api.namespace
    value = now_stamp()
    patch = {"metadata": {"annotations": {Annotation.RENEW_REQUESTED_AT.value: value}}}
    await api.patch_task(namespace, args.task, patch)
    data = {"task": args.task, "namespace": namespace, "renewRequestedAt": value}
    return data, f"agenttask.agentcred.io/{args.task} renewal requested at {value}\n"


def end_patch(args: argparse.Namespace) -> dict[str, Any]:
    if args.failed and not (args.reason or "").strip():
        raise UsageError("--failed needs --reason")
    if args.reason and not args.failed:
        raise UsageError("--reason goes with --failed")
    spec: dict[str, Any] = {"completed": True}
    if args.failed:
        spec["failureReason"] = args.reason
    return {"spec": spec}


async def end_task(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    namespace = args.namespace or api.namespace
    patch = end_patch(args)
    await api.patch_task(namespace, args.task, patch)
    how = f"as Failed ({args.reason})" if args.failed else "as Succeeded"
    data = {"task": args.task, "namespace": namespace, **patch["spec"]}
    return data, f"agenttask.agentcred.io/{args.task} ended {how}\n"
