"""Lease records: the write-ahead handle on every lease, kept in the operator's namespace.

Vocabulary (one name each): a *lease* is a credential issued by a backend; a *session*
is the backend login that parents it (a per-credential Vault token, ``backends.base.
Session``); a *lease record* (``LeaseRecord``) is what the operator persists about one
lease: its id, the session that parents it, the resolved credential and the account it
was logged in as. A task's lease records are the entries of one Secret, the task's
*lease-record Secret*, in the operator's own namespace (``AGENTCRED_NAMESPACE``), never
in the tenant's. The Secret's name (``agentcred-session-<task uid>``) and its label
(``agentcred.io/session=true``) keep the older word "session": existing clusters hold
Secrets under them (and the sweep finds them by that label), so they are not renamed.

The record is written *before* the lease is issued (write-ahead), so a lease is always
findable from the cluster, even when the operator dies between issuing and recording it:
revoking the session revokes the lease. Each record also keeps the *resolved* credential
it came from (connection included), so renewal and revocation use the address the lease
was issued under, even after the AgentCredential was deleted or its CredentialBackend
edited.

The records sit in the operator's namespace so that no tenant can read the tokens
(or forge a record that points the operator somewhere): a Secret labelled like one
in a tenant namespace is never looked at.

The lease-record Secret is deliberately not owned by the task: if the task vanishes
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
from agentcred.models.api_names import MANAGED_BY_US, Annotation, Label
from agentcred.models.names import label_value
from agentcred.models.status import timestamp
from agentcred.services.deps import Deps
from agentcred.services.task_view import TaskView, parse_time

NEXT, PREVIOUS = ".next", ".previous"


@dataclass(frozen=True)
class LeaseRecord:
    """One lease's write-ahead record (one entry of the task's lease-record Secret)."""

    credential: str
    backend: str
    spec: Mapping[str, Any]  # the resolved credential it was issued under (no secrets in it)
    lease_id: str
    session: Session
    # The ServiceAccount the session was logged in as (models/identity.py): a task whose
    # spec names another is never acted for. Empty in records written before it was kept.
    service_account: str = ""

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
                "serviceAccount": self.service_account,
            }
        )

    @classmethod
    def load(cls, text: str) -> LeaseRecord:
        """Parse one record; raise ``MalformedRecord`` (never the text) if it is not one."""
        try:
            raw = json.loads(text)
            return cls(
                credential=str(raw["credential"]),
                backend=str(raw["backend"]),
                spec=dict(raw.get("spec") or {}),
                lease_id=str(raw.get("leaseId") or ""),
                session=Session(
                    ref=str(raw.get("ref") or ""),
                    secret=str(raw["secret"]),
                    expires_at=parse_time(raw.get("expiresAt")),
                ),
                service_account=str(raw.get("serviceAccount") or ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedRecord(f"not a lease record ({type(exc).__name__})") from None

    def expired(self, now: datetime.datetime) -> bool:
        expires = self.session.expires_at
        return expires is not None and expires <= now


class MalformedRecord(ValueError):
    """A lease-record Secret's entry that is not a record we wrote: reported, never trusted."""


def secret_name(task_uid: str) -> str:
    # "session", not "lease-record": the name existing clusters hold (see the docstring).
    return f"agentcred-session-{task_uid}"


def labels(task: TaskView) -> dict[str, str]:
    return {
        **MANAGED_BY_US,
        Label.SESSION: "true",  # the on-cluster label keeps its name (see the docstring)
        Label.TASK: label_value(task.name),
        Label.TASK_UID: task.uid,
        Label.TASK_NAMESPACE: task.namespace,
    }


async def load(deps: Deps, task_uid: str) -> dict[str, LeaseRecord]:
    """The task's records, read fresh (their resourceVersion kept in ``deps.written``, so
    that the ``save`` that follows is one request)."""
    own, name = deps.settings.namespace, secret_name(task_uid)
    found = await secrets.read_secret_and_info(deps.api, own, name)
    if found is None:
        deps.written.pop((own, name), None)
        return {}
    data, info = found
    deps.written[(own, name)] = info.resource_version
    return {key: LeaseRecord.load(value) for key, value in data.items()}


async def save(deps: Deps, task: TaskView, records: Mapping[str, LeaseRecord]) -> None:
    """Replace the lease-record Secret's content (delete it when nothing is left)."""
    own, name = deps.settings.namespace, secret_name(task.uid)
    if not records:
        known = deps.written.pop((own, name), None)
        await secrets.delete_secret(deps.api, own, name, owner_uid=None, known_version=known)
        return
    info = await secrets.write_secret(
        deps.api,
        own,
        name,
        _dumped(records),
        labels=labels(task),
        annotations=_named(task),
        owner=None,
        known_version=deps.written.get((own, name)),
    )
    deps.written[(own, name)] = info.resource_version


def _dumped(records: Mapping[str, LeaseRecord]) -> dict[str, str]:
    return {key: record.dump() for key, record in records.items()}


def _named(task: TaskView) -> dict[str, str]:
    return {Annotation.TASK_NAME: task.name}


def known(deps: Deps, task: TaskView) -> bool:
    """Whether this process read or wrote the task's lease-record Secret (and holds its
    resourceVersion): then it may exist; otherwise ``create`` finds out in one request."""
    return (deps.settings.namespace, secret_name(task.uid)) in deps.written


async def create(deps: Deps, task: TaskView, records: Mapping[str, LeaseRecord]) -> bool:
    """Write the task's records as a new lease-record Secret, with no read first (issue 22:
    a new task's write-ahead costs one request). False when the Secret exists already (an
    attempt that never completed left it): untouched, for the caller to read and retire."""
    own, name = deps.settings.namespace, secret_name(task.uid)
    info = await secrets.create_secret(
        deps.api, own, name, _dumped(records), labels=labels(task), annotations=_named(task)
    )
    if info is None:
        return False
    deps.written[(own, name)] = info.resource_version
    return True


async def put(deps: Deps, task: TaskView, key: str, record: LeaseRecord) -> None:
    records = await load(deps, task.uid)
    records[key] = record
    await save(deps, task, records)


async def drop(deps: Deps, task: TaskView, *keys: str) -> None:
    records = await load(deps, task.uid)
    if any(k in records for k in keys):
        await save(deps, task, {k: v for k, v in records.items() if k not in keys})
