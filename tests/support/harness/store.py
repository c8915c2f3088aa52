"""The objects of the fake API server and what the API server guarantees about them.

One monotonic resourceVersion for every change (as etcd's revision), uids and
creation times assigned on create, ``generation`` bumped when a spec changes, the
status subresource kept apart from the rest of a custom object, deletion held by
finalizers (``deletionTimestamp`` first, gone when the last finalizer goes), owned
objects collected when their owner is gone, and a bounded history of watch events:
a watch from a resourceVersion older than what the history holds gets 410 Gone.

Errors are ``ApiError``s carrying the HTTP status and the Status ``reason`` word the
real server sends (``NotFound``, ``AlreadyExists``, ``Conflict``, ``Expired``...).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from support.harness.kinds import KINDS, Kind
from support.harness.patching import selects

Body = dict[str, Any]
Key = tuple[str, str, str]  # (plural, namespace, name)
HISTORY = 1000  # watch events kept; older resourceVersions are answered 410 Gone


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def status_body(self) -> Body:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.status,
        }


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.plural} "{name}" not found')


@dataclass
class WatchStream:
    """One open watch: the events it still has to deliver (None ends it)."""

    kind: Kind
    namespace: str
    selector: str | None
    queue: asyncio.Queue[Body | None] = field(default_factory=asyncio.Queue)

    def wants(self, obj: Body) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        return selects(self.selector, meta.get("labels") or {})


@dataclass
class Store:
    clock: Callable[[], datetime.datetime]
    history_size: int = HISTORY
    objects: dict[Key, Body] = field(default_factory=dict)
    version: int = 0
    uids: int = 0
    history: list[tuple[int, str, Body]] = field(default_factory=list)  # (rv, type, object)
    horizon: int = 0  # watches from a resourceVersion below this get 410 Gone
    streams: list[WatchStream] = field(default_factory=list)

    # -- reads -----------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> Body:
        obj = self.objects.get((kind.plural, namespace, name))
        if obj is None:
            raise not_found(kind, name)
        return copy.deepcopy(obj)

    def list(self, kind: Kind, namespace: str, selector: str | None) -> list[Body]:
        found = [
            copy.deepcopy(obj)
            for (plural, ns, _), obj in sorted(self.objects.items())
            if plural == kind.plural and (not namespace or ns == namespace)
        ]
        return [o for o in found if selects(selector, o["metadata"].get("labels") or {})]

    # -- writes ----------------------------------------------------------------------

    def create(self, kind: Kind, namespace: str, body: Body, *, keep_status: bool = False) -> Body:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = str(meta.get("name") or "")
        if kind.namespaced:
            meta["namespace"] = namespace = namespace or str(meta.get("namespace") or "")
            if ("namespaces", "", namespace) not in self.objects:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
        else:
            namespace = ""
        if (kind.plural, namespace, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{kind.plural} "{name}" already exists')
        if kind.status_subresource and not keep_status:
            obj.pop("status", None)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        self.uids += 1
        meta.update(
            uid=meta.get("uid") or str(uuid.UUID(int=self.uids)),
            creationTimestamp=meta.get("creationTimestamp") or _timestamp(self.clock()),
            generation=1,
        )
        meta.pop("resourceVersion", None)
        _fold_string_data(obj)
        return self._store(kind, namespace, name, obj, "ADDED")

    def update(self, kind: Kind, old: Body, new: Body, subresource: str = "") -> Body:
        """Write ``new`` over ``old`` (as read): a stale resourceVersion is 409 Conflict."""
        meta = new.setdefault("metadata", {})
        sent = meta.get("resourceVersion")
        if sent and sent != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.plural} "{meta.get("name")}": '
                "the object has been modified; please apply your changes to the latest version",
            )
        if kind.status_subresource:
            new = _status_split(old, new, subresource == "status")
        for fixed in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if fixed in old["metadata"]:
                new["metadata"][fixed] = old["metadata"][fixed]
        new["metadata"]["generation"] = old["metadata"].get("generation", 1) + (
            1 if new.get("spec") != old.get("spec") else 0
        )
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        _fold_string_data(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(kind, new)
        return self._store(kind, str(meta.get("namespace") or ""), meta["name"], new, "MODIFIED")

    def delete(self, kind: Kind, namespace: str, name: str, preconditions: Body) -> Body:
        current = self.get(kind, namespace, name)
        meta = current["metadata"]
        for key in ("uid", "resourceVersion"):
            if preconditions.get(key) and preconditions[key] != meta.get(key):
                raise ApiError(
                    409, "Conflict", f"Precondition failed: {key} in precondition differs"
                )
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = _timestamp(self.clock())
                meta["deletionGracePeriodSeconds"] = 0
                return self._store(kind, namespace, name, current, "MODIFIED")
            return current
        return self._remove(kind, current)

    def _store(self, kind: Kind, namespace: str, name: str, obj: Body, type_: str) -> Body:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(kind.plural, namespace, name)] = obj
        self._emit(kind, type_, obj)
        return copy.deepcopy(obj)

    def _remove(self, kind: Kind, obj: Body) -> Body:
        meta = obj["metadata"]
        self.objects.pop((kind.plural, str(meta.get("namespace") or ""), meta["name"]), None)
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        self._emit(kind, "DELETED", obj)
        self._collect_owned(str(meta.get("uid")))
        return copy.deepcopy(obj)

    def _collect_owned(self, owner_uid: str) -> None:
        """The garbage collector: objects whose every owner is gone go too."""
        alive = {o["metadata"]["uid"] for o in self.objects.values()}
        for (plural, namespace, name), obj in list(self.objects.items()):
            owners = obj["metadata"].get("ownerReferences") or []
            uids = {o.get("uid") for o in owners}
            if owners and owner_uid in uids and not uids & alive:
                self.delete(KINDS[plural], namespace, name, {})

    # -- watch -----------------------------------------------------------------------

    def _emit(self, kind: Kind, type_: str, obj: Body) -> None:
        event = {"type": type_, "object": copy.deepcopy(obj)}
        self.history.append((self.version, kind.plural, event))
        if len(self.history) > self.history_size:
            dropped = self.history.pop(0)
            self.horizon = dropped[0] + 1
        for stream in self.streams:
            if stream.kind == kind and stream.wants(obj):
                stream.queue.put_nowait(copy.deepcopy(event))

    def open_watch(self, stream: WatchStream, since: str) -> None:
        """Queue what happened after ``since`` (everything now, if empty or "0"), then
        follow; a ``since`` older than the history is an ERROR event 410 and the end."""
        if since in ("", "0"):
            for obj in self.list(stream.kind, stream.namespace, stream.selector):
                stream.queue.put_nowait({"type": "ADDED", "object": obj})
        elif int(since) < self.horizon:
            gone = ApiError(410, "Expired", f"too old resource version: {since} ({self.horizon})")
            stream.queue.put_nowait({"type": "ERROR", "object": gone.status_body()})
            stream.queue.put_nowait(None)
            return
        else:
            for version, plural, event in self.history:
                mine = plural == stream.kind.plural and stream.wants(event["object"])
                if version > int(since) and mine:
                    stream.queue.put_nowait(copy.deepcopy(event))
        self.streams.append(stream)

    def close_watch(self, stream: WatchStream) -> None:
        if stream in self.streams:
            self.streams.remove(stream)

    def bookmark(self) -> None:
        """Tell every open watch the current resourceVersion (a BOOKMARK event, as the
        API server sends about once a minute to watches that asked for them)."""
        for stream in self.streams:
            meta = {"resourceVersion": str(self.version)}
            obj = {"apiVersion": stream.kind.api_version, "kind": stream.kind.kind}
            stream.queue.put_nowait({"type": "BOOKMARK", "object": {**obj, "metadata": meta}})

    def end_watches(self) -> None:
        """End every open watch, as the server's timeout does; clients resume."""
        for stream in list(self.streams):
            stream.queue.put_nowait(None)
            self.streams.remove(stream)

    def compact(self) -> None:
        """Forget the watch history: resuming from any earlier version is 410 Gone."""
        self.history.clear()
        self.horizon = self.version + 1

    def __iter__(self) -> Iterator[Body]:
        return iter(self.objects.values())


def _status_split(old: Body, new: Body, to_status: bool) -> Body:
    """A custom object with a status subresource: a write to ``/status`` changes only the
    status; a write to the object changes everything but the status."""
    if to_status:
        kept = copy.deepcopy(old)
        kept["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion")
        if "status" in new:
            kept["status"] = new["status"]
        else:
            kept.pop("status", None)
        return kept
    if "status" in old:
        new["status"] = copy.deepcopy(old["status"])
    else:
        new.pop("status", None)
    return new


def _fold_string_data(obj: Body) -> None:
    """A Secret's ``stringData`` is written into ``data`` (base64), as the server does."""
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return
    data = obj.setdefault("data", {})
    for key, value in (obj.pop("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
