"""A typed, read-only view of one AgentTask object as the lifecycle code needs it."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from agentcred import audit
from agentcred.kube.objects import ObjectRef, OwnerRef
from agentcred.models import correlation
from agentcred.models.api_names import API_VERSION, Annotation, Kind
from agentcred.models.status import CredentialEntry, Phase, parse_entries
from agentcred.models.task import AgentTaskSpec, CredentialRef, parse_task_spec, secret_name_for


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class TaskView:
    namespace: str
    name: str
    uid: str
    generation: int | None
    created: datetime.datetime
    spec: AgentTaskSpec
    status: Mapping[str, Any]
    deleting: bool = False
    owners: tuple[Mapping[str, Any], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created_by: str | None = None  # agentcred.io/created-by, stamped at admission
    given_correlation_id: str | None = None  # its creator's, when well-formed
    resource_version: str | None = None  # of the body it was read from (read once)
    finalizers: tuple[str, ...] = ()

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TaskView:
        """Raises SpecError for a spec the operator cannot use."""
        meta = body["metadata"]
        return cls(
            namespace=sys.intern(meta["namespace"]),  # one copy for the scheduler, versions...
            name=meta["name"],
            uid=meta["uid"],
            generation=meta.get("generation"),
            created=parse_time(meta.get("creationTimestamp"))
            or datetime.datetime.now(datetime.UTC),
            spec=parse_task_spec(body.get("spec") or {}),
            status=body.get("status") or {},
            deleting=bool(meta.get("deletionTimestamp")),
            owners=tuple(meta.get("ownerReferences") or ()),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            created_by=(meta.get("annotations") or {}).get(Annotation.CREATED_BY) or None,
            given_correlation_id=correlation.given(meta),
            resource_version=meta.get("resourceVersion"),
            finalizers=tuple(meta.get("finalizers") or ()),
        )

    def correlation_id(self) -> str:
        """The id of one action on this task (audit line, backend headers): the one its
        creator stamped (``agentcred.io/correlation-id``, models/correlation.py), so every
        action of one agent session shares it; else a fresh one per action."""
        return self.given_correlation_id or audit.new_correlation_id()

    @property
    def phase(self) -> Phase | None:
        value = str(self.status.get("phase") or "")
        return Phase(value) if value in Phase._value2member_map_ else None

    @property
    def ended(self) -> bool:
        phase = self.phase
        return phase is not None and phase.ended

    @property
    def start_time(self) -> datetime.datetime:
        return parse_time(self.status.get("startTime")) or self.created

    @property
    def deadline(self) -> datetime.datetime | None:
        seconds = self.spec.active_deadline_seconds
        return None if seconds is None else self.start_time + datetime.timedelta(seconds=seconds)

    @cached_property
    def entries(self) -> tuple[CredentialEntry, ...]:
        """``status.credentials``, parsed once per view (leniently: models/status.py)."""
        return parse_entries(self.status.get("credentials"))

    def entry(self, credential: str) -> CredentialEntry | None:
        return next((e for e in self.entries if e.name == credential), None)

    def ref(self, credential: str) -> CredentialRef | None:
        return next((r for r in self.spec.credentials if r.name == credential), None)

    def secret_name(self, ref: CredentialRef) -> str:
        return secret_name_for(self.name, ref)

    @property
    def owner(self) -> OwnerRef:
        return OwnerRef(api_version=API_VERSION, kind=Kind.TASK, name=self.name, uid=self.uid)

    @property
    def object_ref(self) -> ObjectRef:
        return ObjectRef(
            api_version=API_VERSION,
            kind=Kind.TASK,
            namespace=self.namespace,
            name=self.name,
            uid=self.uid,
        )
