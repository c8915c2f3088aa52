"""Where a task's backend sessions (e.g. per-credential Vault tokens) live: a Secret.

Every lease the operator issues for a task hangs off a session (a Vault token that
parents it). The session is written to the task's session Secret *before* the lease
is issued (write-ahead), so a lease is always findable from the cluster, even when
the operator dies between issuing and recording it: revoking the session revokes
the lease. Each record also keeps the backend block it came from, so revocation
works even after the AgentCredential was deleted.

The session Secret is deliberately not owned by the task: if the task vanishes
without its finalizer running, garbage collection must not erase the only handle on
live leases; the orphan sweep finds the Secret by label and revokes what is in it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentcred.backends.base import Session
from agentcred.kube import secrets
from agentcred.models.status import timestamp
from agentcred.services.task_view import TaskView, parse_time

MANAGED_BY = {"app.kubernetes.io/managed-by": "agentcred"}
SESSION_LABEL = "agentcred.io/session"
TASK_LABEL = "agentcred.io/task"
TASK_UID_LABEL = "agentcred.io/task-uid"
NEXT, PREVIOUS = ".next", ".previous"


@dataclass(frozen=True)
class SessionRecord:
    credential: str
    backend: str
    spec: Mapping[str, Any]  # the AgentCredential spec it was issued under (no secrets in it)
    lease_id: str
    session: Session

    def dump(self) -> str:
        return json.dumps(
            {
                "credential": self.credential,
                "backend": self.backend,
                "spec": dict(self.spec),
                "leaseId": self.lease_id,
                "ref": self.session.ref,
                "secret": self.session.secret,
                "expiresAt": timestamp(self.session.expires_at)
                if self.session.expires_at
                else None,
            }
        )

    @classmethod
    def load(cls, text: str) -> SessionRecord:
        raw = json.loads(text)
        return cls(
            credential=raw["credential"],
            backend=raw["backend"],
            spec=raw.get("spec") or {},
            lease_id=raw.get("leaseId") or "",
            session=Session(
                ref=raw.get("ref") or "",
                secret=raw["secret"],
                expires_at=parse_time(raw.get("expiresAt")),
            ),
        )

    def expired(self, now: datetime.datetime) -> bool:
        expires = self.session.expires_at
        return expires is not None and expires <= now


def secret_name(task_uid: str) -> str:
    return f"agentcred-session-{task_uid}"


def labels(task: TaskView) -> dict[str, str]:
    return {
        **MANAGED_BY,
        SESSION_LABEL: "true",
        TASK_LABEL: task.name[:63],
        TASK_UID_LABEL: task.uid,
    }


async def load(api: Any, namespace: str, task_uid: str) -> dict[str, SessionRecord]:
    data = await secrets.read_secret_data(api, namespace, secret_name(task_uid))
    return {key: SessionRecord.load(value) for key, value in (data or {}).items()}


async def save(api: Any, task: TaskView, records: Mapping[str, SessionRecord]) -> None:
    """Replace the session Secret's content (delete it when nothing is left)."""
    if not records:
        await secrets.delete_secret(api, task.namespace, secret_name(task.uid), owner_uid=None)
        return
    await secrets.write_secret(
        api,
        task.namespace,
        secret_name(task.uid),
        {key: record.dump() for key, record in records.items()},
        labels=labels(task),
        annotations={},
        owner=None,
    )


async def put(api: Any, task: TaskView, key: str, record: SessionRecord) -> None:
    records = await load(api, task.namespace, task.uid)
    records[key] = record
    await save(api, task, records)


async def drop(api: Any, task: TaskView, *keys: str) -> None:
    records = await load(api, task.namespace, task.uid)
    if any(k in records for k in keys):
        await save(api, task, {k: v for k, v in records.items() if k not in keys})
