"""Kubernetes Events about our objects: what people see in ``kubectl describe``.

An Event is a courtesy, not part of the work: failing to post one must never fail
the reconciliation that wanted to report something, so ``post_event`` logs and
returns. Callers pass messages already free of secret values.
"""

from __future__ import annotations

import datetime
import logging
import socket
import uuid

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from agentcred.kube.calls import call
from agentcred.kube.errors import subject
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
    what = subject("Event", obj.namespace, body["metadata"]["name"])
    try:
        await call(what, CoreV1Api(api).create_namespaced_event, obj.namespace, body)
    except Exception as exc:
        log.warning("Could not post event %s about %s %s: %s", reason, obj.kind, obj.name, exc)


def event_body(obj: ObjectRef, *, type_: str, reason: str, message: str) -> Body:
    """The Event object, built without I/O."""
    now = datetime.datetime.now(datetime.UTC)
    seconds = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    name = f"{obj.name[: _MAX_NAME - _SUFFIX]}.{uuid.uuid4().hex[:16]}"
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
