"""The identity an AgentTask acts as, and the check that the operator never acts for another.

A task's ``serviceAccountName`` and ``credentials`` are set once, at creation: the CRD has
rules on ``spec`` and the shipped admission policy denies an UPDATE that changes them.
Those guards live in objects a cluster admin can replace, and a task created before them
could have been edited since. So the operator keeps its own record: with a task's first
status write it stores the identity it acts for in ``status.identity`` (only the operator
writes status), and each write-ahead lease record carries the ServiceAccount its
session was logged in as. Before it issues, renews, re-issues, refreshes or restores
anything it compares the spec with that record; a task whose spec differs ends
``Failed``, reason ``IdentityChanged``, with everything revoked. No backend is ever called
for the new identity.

Pure: no I/O. The lifecycle code (services/lifecycle.py) acts on the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentcred.models.api_names import Reason
from agentcred.models.status import IdentityCredential, IdentityStatus
from agentcred.models.task import AgentTaskSpec

IDENTITY_CHANGED = Reason.IDENTITY_CHANGED


@dataclass(frozen=True)
class TaskIdentity:
    """Who a task acts as: its ServiceAccount (default filled in) and its credentials, as
    ``(name, secretName or None)`` pairs in name order (the list is a map keyed by name:
    its order carries no meaning)."""

    service_account: str
    credentials: tuple[tuple[str, str | None], ...]

    @classmethod
    def of(cls, spec: AgentTaskSpec) -> TaskIdentity:
        return cls(
            service_account=spec.service_account_name,
            credentials=tuple(sorted((c.name, c.secret_name) for c in spec.credentials)),
        )

    def status(self) -> IdentityStatus:
        """The ``status.identity`` object recording this identity."""
        credentials: list[IdentityCredential] = []
        for name, secret in self.credentials:
            item = IdentityCredential(name=name)
            if secret:
                item["secretName"] = secret
            credentials.append(item)
        return IdentityStatus(serviceAccountName=self.service_account, credentials=credentials)


class Unreadable(ValueError):
    """``status.identity`` is there but is not a record the operator wrote."""


def recorded(status: Mapping[str, Any]) -> TaskIdentity | None:
    """The identity recorded in a task's status; None when none is (a task the operator
    has not written yet, or one from before identities were recorded). Raises
    ``Unreadable`` for a record that is present but malformed: that is never trusted."""
    raw = status.get("identity")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Unreadable("status.identity is not an object")
    account = raw.get("serviceAccountName")
    creds = raw.get("credentials")
    if not isinstance(account, str) or not account or not isinstance(creds, list):
        raise Unreadable("status.identity lacks serviceAccountName or credentials")
    pairs: list[tuple[str, str | None]] = []
    for item in creds:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise Unreadable("status.identity.credentials holds an entry without a name")
        secret = item.get("secretName")
        pairs.append((item["name"], secret if isinstance(secret, str) and secret else None))
    return TaskIdentity(service_account=account, credentials=tuple(sorted(pairs)))


@dataclass(frozen=True)
class Verdict:
    """What to do before acting for a task.

    ``changed``: end it (``IdentityChanged``, ``message`` says what changed); otherwise
    ``record``: write ``status.identity`` (nothing recorded yet) and go on."""

    changed: bool
    record: bool
    message: str = ""


SAME = Verdict(changed=False, record=False)
UNRECORDED = Verdict(changed=False, record=True)


def check(
    status: Mapping[str, Any],
    spec: AgentTaskSpec,
    record_accounts: Iterable[str] = (),
) -> Verdict:
    """Compare the task's spec with the identity recorded in its status and with the
    ServiceAccounts its lease records were logged in as (records written before
    sessions carried one pass an empty string, which is ignored)."""
    current = TaskIdentity.of(spec)
    try:
        first = recorded(status)
    except Unreadable as exc:
        return Verdict(
            changed=True,
            record=False,
            message=f"{exc}: the operator cannot tell "
            "which identity the task was first issued under",
        )
    problems: list[str] = []
    if first is not None:
        problems += _differences(first, current)
    others = sorted({a for a in record_accounts if a and a != current.service_account})
    if others and not any(p.startswith("serviceAccountName") for p in problems):
        problems.append(
            f"serviceAccountName is {current.service_account!r} but its sessions were logged "
            f"in as {', '.join(repr(a) for a in others)}"
        )
    if problems:
        return Verdict(
            changed=True,
            record=False,
            message="; ".join(problems)
            + ": the operator acts only for the identity a task was first issued under "
            "(create a new AgentTask for another)",
        )
    return UNRECORDED if first is None else SAME


def _differences(first: TaskIdentity, current: TaskIdentity) -> list[str]:
    problems: list[str] = []
    if first.service_account != current.service_account:
        problems.append(
            f"serviceAccountName is {current.service_account!r} but the task was first "
            f"issued as {first.service_account!r}"
        )
    before, now = dict(first.credentials), dict(current.credentials)
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    renamed = sorted(n for n in set(now) & set(before) if now[n] != before[n])
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("added", added),
            ("removed", removed),
            ("secretName changed for", renamed),
        )
        if names
    ]
    if parts:
        problems.append(
            "credentials changed since the task was first issued (" + "; ".join(parts) + ")"
        )
    return problems
