"""``kubectl agentcred leases``: the platform's view of what is out there now: every
Issued credential of every AgentTask the user may list, by namespace and backend, with
its lease id and when it renews and expires.

Read from the tasks' status only, never from the operator's lease-record Secrets (those
hold session tokens): no value is ever shown or read.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from agentcred.plugin import output
from agentcred.plugin.api import Api

ISSUED = "Issued"


def register(commands: Any) -> None:
    parser = commands.add_parser("leases", help="active leases by namespace and backend")
    parser.add_argument("-n", "--namespace", help="one namespace (default: all you may list)")
    parser.set_defaults(run=run)


async def run(api: Api, args: argparse.Namespace) -> tuple[Any, str]:
    tasks = await api.list_tasks(args.namespace)
    found = rows(tasks)
    return {"leases": found}, render(found, datetime.datetime.now(datetime.UTC))


def rows(tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per Issued credential of an unfinished task, by namespace, backend, expiry."""
    found = []
    for task in tasks:
        meta, status = task.get("metadata") or {}, task.get("status") or {}
        if status.get("phase") not in ("Active", "Pending"):
            continue
        for entry in status.get("credentials") or []:
            if entry.get("state") != ISSUED:
                continue
            found.append(
                {
                    "namespace": meta.get("namespace"),
                    "backend": entry.get("backend"),
                    "task": meta.get("name"),
                    "credential": entry.get("name"),
                    "leaseId": entry.get("leaseId") or None,
                    "renewAt": entry.get("renewAt"),
                    "expiresAt": entry.get("expiresAt"),
                }
            )
    found.sort(key=lambda r: (r["namespace"] or "", r["backend"] or "", r["expiresAt"] or ""))
    return found


def render(found: Sequence[Mapping[str, Any]], now: datetime.datetime) -> str:
    if not found:
        return "No active leases.\n"
    table = output.table(
        ["NAMESPACE", "BACKEND", "TASK", "CREDENTIAL", "LEASE ID", "RENEW AT", "EXPIRES"],
        [
            [
                r["namespace"],
                r["backend"],
                r["task"],
                r["credential"],
                r["leaseId"],
                output.relative(r["renewAt"], now),
                f"{r['expiresAt']} ({output.relative(r['expiresAt'], now)})"
                if r["expiresAt"]
                else None,
            ]
            for r in found
        ],
    )
    groups: dict[tuple[str, str], int] = {}
    for r in found:
        key = (str(r["namespace"]), str(r["backend"]))
        groups[key] = groups.get(key, 0) + 1
    totals = ", ".join(f"{ns}/{backend}: {n}" for (ns, backend), n in sorted(groups.items()))
    return table + f"\n{len(found)} active lease(s): {totals}\n"
