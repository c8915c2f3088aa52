"""Pure helpers (no I/O): the AgentTask and Job the client creates, what a task's status
says to a waiting client, and the values read from its generated Secrets."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentcred_client import names
from agentcred_client.errors import EnvConflict

SECRET_VOLUME_PREFIX = "agentcred-"  # noqa: S105 - a volume name, not a secret


def new_task_name(prefix: str = "agent") -> str:
    """A fresh task name: ``<prefix>-<10 hex>`` (a DNS label, and short enough that
    ``<task>-<credential>``, the generated Secret's name, stays readable)."""
    return f"{prefix}-{secrets.token_hex(5)}"


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def task_body(
    *,
    name: str,
    namespace: str,
    credentials: Sequence[str],
    service_account: str | None,
    deadline_seconds: int | None,
    labels: Mapping[str, str] | None,
    correlation_id: str,
    traceparent: str | None,
    pod_selector: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    if not credentials:
        raise ValueError("credentials: name at least one AgentCredential")
    annotations = {names.CORRELATION_ID: correlation_id}
    if traceparent:
        annotations[names.TRACEPARENT] = traceparent
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels or {}),
        "annotations": annotations,
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    spec: dict[str, Any] = {"credentials": [{"name": c} for c in credentials]}
    if service_account:
        spec["serviceAccountName"] = service_account
    if deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = int(deadline_seconds)
    if pod_selector is not None:
        spec["podSelector"] = {"matchLabels": dict(pod_selector)}
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": metadata, "spec": spec}


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to ``body`` (not the controller: the operator's own rules apply)."""
    meta = body["metadata"]
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "blockOwnerDeletion": False,
    }


@dataclass(frozen=True)
class State:
    """What a task's object says to a client waiting on it."""

    phase: str
    ready_reason: str
    ready_message: str
    revoked: bool

    @property
    def active(self) -> bool:
        return self.phase == names.ACTIVE

    @property
    def ended(self) -> bool:
        return self.phase in names.ENDED_PHASES

    @property
    def awaiting_approval(self) -> bool:
        return self.ready_reason == names.AWAITING_APPROVAL and not self.ended


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def state_of(body: Mapping[str, Any]) -> State:
    status = body.get("status") or {}
    ready = _condition(status, names.READY)
    revoked = _condition(status, names.REVOKED)
    return State(
        phase=str(status.get("phase") or ""),
        ready_reason=str(ready.get("reason") or status.get("reason") or ""),
        ready_message=str(ready.get("message") or status.get("message") or ""),
        revoked=revoked.get("status") == "True",
    )


def secret_names(body: Mapping[str, Any]) -> dict[str, str]:
    """credential -> generated Secret name, as the operator recorded it in
    ``status.credentials[].secretName`` (else ``spec.credentials[].secretName``, else
    ``<task>-<credential>``, the operator's default for names that fit)."""
    recorded = {
        str(e.get("name")): str(e["secretName"])
        for e in (body.get("status") or {}).get("credentials") or []
        if e.get("secretName")
    }
    task = body["metadata"]["name"]
    result = {}
    for ref in (body.get("spec") or {}).get("credentials") or []:
        cred = str(ref["name"])
        result[cred] = recorded.get(cred) or ref.get("secretName") or f"{task}-{cred}"
    return result


def decode(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's ``data`` decoded (UTF-8; a value that is not text is an error naming
    only its key)."""
    out = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except UnicodeDecodeError:
            raise ValueError(f"key {key!r} of the generated Secret is not UTF-8 text") from None
    return out


def merge_env(values: Mapping[str, Mapping[str, str]], *, task: str = "") -> dict[str, str]:
    """Every credential's keys in one mapping; EnvConflict when two credentials hold the
    same key with different values (the same value twice is fine)."""
    merged: dict[str, str] = {}
    source: dict[str, str] = {}
    for credential, data in values.items():
        for key, value in data.items():
            if key in merged and merged[key] != value:
                raise EnvConflict(key, (source[key], credential), name=task)
            merged.setdefault(key, value)
            source.setdefault(key, credential)
    return merged


def failure_reason(exc: BaseException, hidden: Iterable[str] = ()) -> str:
    """``spec.failureReason`` for an exception that ended a session: its type and message,
    any credential value the session received blanked out, cut to the CRD's limit."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    for value in sorted({v for v in hidden if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    text = " ".join(text.split()) or type(exc).__name__
    limit = names.MAX_FAILURE_REASON
    return text if len(text) <= limit else text[: limit - 3] + "..."


def job_body(
    *,
    name: str,
    namespace: str,
    task: str,
    image: str,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    env: Mapping[str, str] | None,
    service_account: str | None,
    secrets_by_credential: Mapping[str, str],
    mount_path: str | None,
    labels: Mapping[str, str] | None,
    backoff_limit: int,
    ttl_seconds_after_finished: int | None,
    pod_spec: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A suspended batch/v1 Job for a task: its pods labelled ``agentcred.io/task`` (the
    task's ``podSelector``), every generated Secret as ``envFrom`` (and, with
    ``mount_path``, as files under ``<mount_path>/<credential>/``); unsuspended once the
    task is Active."""
    container: dict[str, Any] = {
        "name": "agent",
        "image": image,
        "envFrom": [{"secretRef": {"name": s}} for s in secrets_by_credential.values()],
    }
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    volumes = []
    if mount_path:
        container["volumeMounts"] = []
        for cred, secret in secrets_by_credential.items():
            volume = SECRET_VOLUME_PREFIX + cred
            volumes.append({"name": volume, "secret": {"secretName": secret}})
            container["volumeMounts"].append(
                {"name": volume, "mountPath": f"{mount_path.rstrip('/')}/{cred}", "readOnly": True}
            )
    pod_labels = {**(labels or {}), names.TASK_LABEL: task}
    spec: dict[str, Any] = {**(pod_spec or {}), "restartPolicy": "Never", "containers": [container]}
    if volumes:
        spec["volumes"] = [*spec.get("volumes", []), *volumes]
    if service_account:
        spec["serviceAccountName"] = service_account
    job_spec: dict[str, Any] = {
        "suspend": True,
        "backoffLimit": backoff_limit,
        "template": {"metadata": {"labels": pod_labels}, "spec": spec},
    }
    if ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": job_spec,
    }
