"""Kubernetes Events about our objects: what people see in ``kubectl describe``.

An Event is a courtesy, not part of the work: failing to post one must never fail
the reconciliation that wanted to report something, so ``post_event`` logs and
returns. Callers pass messages already free of secret values.

Events are aggregated per (object, type, reason), as client-go's event correlator
does: one Event object per reason whose ``count`` and ``lastTimestamp`` grow, so a
task renewed every minute for a day has one ``LeaseRenewed`` Event, not 1,440.

The client remembers the count and resourceVersion of each Event it posted, so a reason
the object already has costs one PATCH at that version; only an Event changed by someone
else since (409) is read first, and one expired by the API server (404) created again.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import socket
import weakref
from collections import OrderedDict
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from agentcred.kube.calls import call
from agentcred.kube.errors import KubeConflict, KubeNotFound, subject
from agentcred.kube.objects import Body, ObjectRef

log = logging.getLogger(__name__)

COMPONENT = "agentcred"
MAX_MESSAGE = 1024
MAX_REASON = 128
_SUFFIX = 17  # "." and 16 hex digits
_MAX_NAME = 253
REMEMBERED = 4096  # Events whose count and version a client keeps (least recent dropped)

# Per API client (a test's fake server gets its own): (namespace, name) -> (count, version)
_posted: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, str], tuple[int, str]]] = (
    weakref.WeakKeyDictionary()
)


async def post_event(
    api: ApiClient, obj: ObjectRef, *, type_: str, reason: str, message: str
) -> None:
    """Create a core/v1 Event about ``obj`` (``type_`` is Normal or Warning). Never raises."""
    body = event_body(obj, type_=type_, reason=reason, message=message)
    name = body["metadata"]["name"]
    what = subject("Event", obj.namespace, name)
    core = CoreV1Api(api)
    seen = _posted.setdefault(api, OrderedDict())
    key = (obj.namespace, name)
    try:
        written = None
        if key in seen:  # posted by us: count it at the version we wrote, one request
            count, version = seen[key]
            written = await _count(core, what, body, count + 1, version)
        if written is None:
            try:
                written = await call(what, core.create_namespaced_event, obj.namespace, body)
            except KubeConflict:  # seen before: count it on the existing Event
                current = await call(what, core.read_namespaced_event, name, obj.namespace)
                count = int(current.get("count") or 1)
                version = current["metadata"]["resourceVersion"]
                written = await _count(core, what, body, count + 1, version)
        if written is not None:
            seen[key] = (int(written.get("count") or 1), written["metadata"]["resourceVersion"])
            seen.move_to_end(key)
            while len(seen) > REMEMBERED:
                seen.popitem(last=False)
    except Exception as exc:
        seen.pop(key, None)
        log.warning("Could not post event %s about %s %s: %s", reason, obj.kind, obj.name, exc)


async def _count(core: CoreV1Api, what: str, body: Body, count: int, version: str) -> Body | None:
    """The Event ``body`` names, counted to ``count`` if it is still at ``version``; None
    when it changed (409) or expired (404) since."""
    meta = body["metadata"]
    patch = {
        "count": count,
        "message": body["message"],
        "lastTimestamp": body["lastTimestamp"],
        "metadata": {"resourceVersion": version},
    }
    try:
        written: Body = await call(
            what,
            core.patch_namespaced_event,
            meta["name"],
            meta["namespace"],
            patch,
            _content_type="application/merge-patch+json",
        )
    except (KubeConflict, KubeNotFound):
        return None
    return written


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
