"""``kubectl agentcred status TASK``: one view of a task, as ``cmctl status certificate``
gives of a certificate: its phase and why, each credential's backend, lease id, issue,
renewal and expiry times and renewal count, its conditions, its recent Events, and for a
task that was refused, the rule that refused it (the reason and the field it names).

Everything comes from the task's own status and Events: what the operator already
recorded (models/status.py), never a Secret.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from agentcred.models.api_names import ConditionType, Reason
from agentcred.plugin import output
from agentcred.plugin.api import Api

EVENTS_SHOWN = 10
# Reasons a task ends or waits with because a rule said no (not because something broke).
REFUSALS = frozenset(
    {
        Reason.NOT_ALLOWED,
        Reason.QUARANTINED,
        Reason.INVALID_CREDENTIAL,
        Reason.INVALID_BACKEND,
        Reason.TTL_EXCEEDED,
        Reason.UNLEASED,
        Reason.IDENTITY_CHANGED,
        Reason.TEMPLATE_ERROR,
        "ApprovalDenied",
        "ApprovalTimedOut",
    }
)
CREDENTIAL_KEYS = (
    "name",
    "secretName",
    "backend",
    "leaseId",
    "state",
    "issuedAt",
    "renewAt",
    "expiresAt",
    "renewals",
    "reissues",
)


def register(commands: Any) -> None:
    parser = commands.add_parser("status", help="show a task: phase, leases, conditions, events")
    parser.add_argument("task", help="the AgentTask's name")
    parser.add_argument("-n", "--namespace", help="its namespace (default: the context's)")
    parser.set_defaults(run=run)


async def run(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    namespace = args.namespace or api.namespace
    task = await api.get_task(namespace, args.task)
    try:
        events = await api.task_events(namespace, task["metadata"]["uid"])
    except Exception:  # Events are a bonus: a user who may not list them still sees the rest
        events = []
    now = datetime.datetime.now(datetime.UTC)
    view = report(task, events)
    return view, render(view, now)


def refusal(status: Mapping[str, Any]) -> dict[str, str] | None:
    """The rule that refused the task: its final reason, else a Ready=False reason."""
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    if reason in REFUSALS:
        return {"reason": reason, "rule": message}
    for cond in status.get("conditions") or []:
        if cond.get("type") == ConditionType.READY and cond.get("reason") in REFUSALS:
            return {"reason": str(cond["reason"]), "rule": str(cond.get("message") or "")}
    return None


def report(task: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What ``status`` shows, as data (``-o json|yaml`` prints exactly this)."""
    meta, spec, status = task["metadata"], task.get("spec") or {}, task.get("status") or {}
    view: dict[str, Any] = {
        "task": meta["name"],
        "namespace": meta["namespace"],
        "serviceAccount": spec.get("serviceAccountName") or "default",
        "phase": status.get("phase") or "Pending",
        **output.pick(status, "reason", "message", "startTime", "completionTime", "expiresAt"),
        "credentials": [
            output.pick(entry, *CREDENTIAL_KEYS) for entry in status.get("credentials") or []
        ],
        "conditions": [
            output.pick(c, "type", "status", "reason", "message", "lastTransitionTime")
            for c in status.get("conditions") or []
        ],
        "events": [_event(e) for e in _recent(events)],
    }
    refused = refusal(status)
    if refused is not None:
        view["refusedBy"] = refused
    waiting = [c["name"] for c in spec.get("credentials") or [] if isinstance(c, Mapping)]
    issued = {e.get("name") for e in view["credentials"]}
    view["notIssued"] = [name for name in waiting if name not in issued]
    return view


def _recent(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def when(event: Mapping[str, Any]) -> str:
        return str(event.get("lastTimestamp") or event.get("eventTime") or "")

    return sorted(events, key=when)[-EVENTS_SHOWN:]


def _event(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": event.get("message"),
        "count": event.get("count") or 1,
        "lastTimestamp": event.get("lastTimestamp") or event.get("eventTime"),
    }


def render(view: Mapping[str, Any], now: datetime.datetime) -> str:
    phase = view["phase"]
    if view.get("reason"):
        phase = f"{phase} ({view['reason']}: {view.get('message') or ''})"
    head = [
        ("Task", f"{view['namespace']}/{view['task']}"),
        ("Phase", phase),
        ("ServiceAccount", view["serviceAccount"]),
        ("Started", _when(view.get("startTime"), now)),
    ]
    if view.get("completionTime"):
        head.append(("Ended", _when(view["completionTime"], now)))
    if view.get("expiresAt"):
        head.append(("Expires", _when(view["expiresAt"], now)))
    if view.get("refusedBy"):
        head.append(("Refused by", f"{view['refusedBy']['reason']}: {view['refusedBy']['rule']}"))
    if view.get("notIssued"):
        head.append(("Not issued", ", ".join(view["notIssued"])))
    text = output.fields(head)
    text += "Credentials:\n" + _credentials(view["credentials"], now)
    text += "Conditions:\n" + _conditions(view["conditions"], now)
    text += "Events:\n" + _events(view["events"], now)
    return text


def _when(text: Any, now: datetime.datetime) -> str:
    return f"{text} ({output.relative(text, now)})" if text else output.NONE


def _credentials(entries: Sequence[Mapping[str, Any]], now: datetime.datetime) -> str:
    if not entries:
        return "  (none issued)\n"
    rows = [
        [
            e.get("name"),
            e.get("backend"),
            e.get("secretName"),
            e.get("leaseId"),
            e.get("state"),
            output.relative(e.get("issuedAt"), now),
            output.relative(e.get("renewAt"), now),
            output.relative(e.get("expiresAt"), now),
            e.get("renewals", 0),
        ]
        for e in entries
    ]
    headers = ["NAME", "BACKEND", "SECRET", "LEASE ID", "STATE", "ISSUED", "RENEW AT", "EXPIRES"]
    return output.table([*headers, "RENEWALS"], rows, indent="  ")


def _conditions(conditions: Sequence[Mapping[str, Any]], now: datetime.datetime) -> str:
    if not conditions:
        return "  (none)\n"
    rows = [
        [
            c.get("type"),
            c.get("status"),
            c.get("reason"),
            output.relative(c.get("lastTransitionTime"), now),
            c.get("message"),
        ]
        for c in conditions
    ]
    return output.table(["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows, indent="  ")


def _events(events: Sequence[Mapping[str, Any]], now: datetime.datetime) -> str:
    if not events:
        return "  (none)\n"
    rows = [
        [
            output.relative(e.get("lastTimestamp"), now),
            e.get("type"),
            e.get("reason"),
            f"x{e['count']}" if (e.get("count") or 1) > 1 else "",
            e.get("message"),
        ]
        for e in events
    ]
    return output.table(["LAST SEEN", "TYPE", "REASON", "COUNT", "MESSAGE"], rows, indent="  ")
