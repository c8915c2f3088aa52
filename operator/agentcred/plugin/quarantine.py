"""``kubectl agentcred quarantine`` and ``lift``: the incident responder's kill switch.

``quarantine`` creates a CredentialQuarantine from its targets (repeatable flags) and a
reason; with ``--wait`` it waits for the operator's ``Complete`` condition and shows what
it ended. ``lift NAME`` deletes it: matching tasks may be created again; nothing is
re-issued for the tasks it ended. Needs ClusterRole ``agentcred-incident-responder``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from agentcred.models.api_names import API_VERSION, ConditionType, Kind
from agentcred.plugin import output
from agentcred.plugin.api import Api, PluginError

POLL_SECONDS = 0.5


class UsageError(PluginError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=2)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "quarantine",
        help="end every matching task now, revoke what it holds, refuse new ones",
        description="Create a CredentialQuarantine. Targets are repeatable; a task matching "
        "any one of them is quarantined.",
    )
    parser.add_argument("--namespace", action="append", default=[], help="a namespace")
    parser.add_argument(
        "--service-account", action="append", default=[], metavar="NS/NAME", help="a ServiceAccount"
    )
    parser.add_argument("--backend", action="append", default=[], help="a CredentialBackend")
    parser.add_argument(
        "--credential", action="append", default=[], metavar="NS/NAME", help="an AgentCredential"
    )
    parser.add_argument("--selector", metavar="K=V,...", help="task labels (every one must match)")
    parser.add_argument(
        "--namespace-selector", metavar="K=V,...", help="namespace labels (every one must match)"
    )
    parser.add_argument("--reason", required=True, help="why (shown on every ended task)")
    parser.add_argument("--name", help="the quarantine's name (default: generated)")
    parser.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS", help="wait until it is Complete"
    )
    parser.set_defaults(run=create)
    lift = commands.add_parser("lift", help="delete a CredentialQuarantine (lift it)")
    lift.add_argument("name", help="the CredentialQuarantine's name")
    lift.set_defaults(run=delete)


def labels(text: str | None, flag: str) -> dict[str, str] | None:
    """``a=1,b=2`` as a dict; UsageError for anything else."""
    if text is None:
        return None
    pairs: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag}: expected key=value[,key=value...], got {part!r}")
        pairs[key.strip()] = value.strip()
    if not pairs:
        raise UsageError(f"{flag}: needs at least one key=value")
    return pairs


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    """The CredentialQuarantine's spec from the flags (UsageError when no target)."""
    spec: dict[str, Any] = {"reason": args.reason}
    for flag, key, values in (
        ("--service-account", "serviceAccounts", args.service_account),
        ("--credential", "agentCredentials", args.credential),
    ):
        for value in values:
            if value.count("/") != 1 or value.startswith("/") or value.endswith("/"):
                raise UsageError(f"{flag}: expected namespace/name, got {value!r}")
        if values:
            spec[key] = list(values)
    if args.namespace:
        spec["namespaces"] = list(args.namespace)
    if args.backend:
        spec["credentialBackends"] = list(args.backend)
    task_labels = labels(args.selector, "--selector")
    if task_labels:
        spec["taskSelector"] = {"matchLabels": task_labels}
    ns_labels = labels(args.namespace_selector, "--namespace-selector")
    if ns_labels:
        spec["namespaceSelector"] = {"matchLabels": ns_labels}
    if len(spec) == 1:
        raise UsageError(
            "name at least one target: --namespace, --service-account, --backend, "
            "--credential, --selector or --namespace-selector"
        )
    if not args.reason.strip():
        raise UsageError("--reason must say why")
    return spec


async def create(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    spec = spec_of(args)
    meta: dict[str, Any] = {"name": args.name} if args.name else {"generateName": "quarantine-"}
    body = {"apiVersion": API_VERSION, "kind": Kind.QUARANTINE, "metadata": meta, "spec": spec}
    created = await api.create_quarantine(body)
    name = created["metadata"]["name"]
    text = f"credentialquarantine.agentcred.io/{name} created\n"
    if args.wait > 0:
        created = await _wait_complete(api, name, args.wait)
        text += summary(created)
    return created, text


async def _wait_complete(api: Api, name: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        body = await api.get_quarantine(name)
        if complete(body) or time.monotonic() >= deadline:
            if not complete(body):
                raise PluginError(f"CredentialQuarantine {name}: not Complete after {seconds:g}s")
            return body
        await asyncio.sleep(POLL_SECONDS)


def complete(body: Mapping[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == ConditionType.COMPLETE and c.get("status") == "True" for c in conditions
    )


def summary(body: Mapping[str, Any]) -> str:
    status = body.get("status") or {}
    cond: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == ConditionType.COMPLETE), {}
    )
    pairs: Sequence[tuple[str, Any]] = [
        ("Matched tasks", status.get("matchedTasks", 0)),
        ("Credentials revoked", status.get("leasesRevoked", 0)),
        ("Revoke failures", status.get("revokeFailures", 0)),
        ("Complete", f"{cond.get('status', 'Unknown')} ({cond.get('message') or ''})"),
    ]
    text = output.fields(pairs)
    for task in status.get("tasks") or []:
        text += f"  ended {task}\n"
    return text


async def delete(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    await api.delete_quarantine(args.name)
    return {"name": args.name, "lifted": True}, (
        f"credentialquarantine.agentcred.io/{args.name} deleted (lifted; nothing is re-issued "
        "for the tasks it ended)\n"
    )
