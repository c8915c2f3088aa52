"""Kubernetes Events about our objects: what people see in ``kubectl describe``.

An Event is a courtesy, not part of the work: failing to post one must never fail
the reconciliation that wanted to report something, so ``post_event`` logs and
returns. Callers pass messages already free of secret values.

Events are aggregated per (object, type, reason), as client-go's event correlator
does: one Event object per reason whose ``count`` and ``lastTimestamp`` grow, so a
task renewed every minute for a day has one ``LeaseRenewed`` Event, not 1,440.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import socket

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from agentcred.kube.calls import call
from agentcred.kube.errors import KubeConflict, subject
from agentcred.kube.objects import Body, ObjectRef

log = logging.getLogger(__name__)

COMPONENT = "agentcred"
MAX_MESSAGE = 1024
MAX_REASON = 128
_SUFFIX = 17  # "." and 16 hex digits
_MAX_NAME = 253


async def post_event(
    api: ApiClient, obj: ObjectRef, *, type_: str, reason: str, message: str
) -> None:
    """Create a core/v1 Event about ``obj`` (``type_`` is Normal or Warning). Never raises."""
    body = event_body(obj, type_=type_, reason=reason, message=message)
    name = body["metadata"]["name"]
    what = subject("Event", obj.namespace, name)
    core = CoreV1Api(api)
    try:
        try:
            await call(what, core.create_namespaced_event, obj.namespace, body)
        except KubeConflict:  # seen before: count it on the existing Event
            current = await call(what, core.read_namespaced_event, name, obj.namespace)
            patch = {
                "count": int(current.get("count") or 1) + 1,
                "message": body["message"],
                "lastTimestamp": body["lastTimestamp"],
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            }
            await call(
                what,
                core.patch_namespaced_event,
                name,
                obj.namespace,
                patch,
                _content_type="application/merge-patch+json",
            )
    except Exception as exc:
        log.warning("Could not post event %s about %s %s: %s", reason, obj.kind, obj.name, exc)


def event_body(obj: ObjectRef, *, type_: str, reason: str, message: str) -> Body:
    """The Event object, built without I/O."""
    now = datetime.datetime.now(datetime.UTC)
    seconds = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    key = f"{obj.uid}/{type_}/{reason}".encode()
    name = f"{obj.name[: _MAX_NAME - _SUFFIX]}.{hashlib.sha256(key).hexdigest()[:16]}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": obj.namespace},
        "involvedObject": obj.as_dict(),
        "type": type_,
        "reason": reason[:MAX_REASON],
        "message": message[:MAX_MESSAGE],
        "action": reason[:MAX_REASON],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": seconds,
        "lastTimestamp": seconds,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "count": 1,
    }
