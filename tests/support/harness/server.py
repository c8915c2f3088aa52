"""An in-memory Kubernetes API server that answers the operator's requests and records each.

Requests arrive as the client library sends them (method, path, query, content type,
JSON body; see transport.py) and are answered as the real API server would for the
verbs the operator uses: get, list (label selectors, pages), watch, create (409
AlreadyExists), update and patch (merge, JSON and strategic merge patches; 409 Conflict
on a stale resourceVersion), delete (404, preconditions, finalizers) and the
ServiceAccount ``token`` subresource (TokenRequest).

Every request is recorded as a ``Call`` (verb, resource, subresource, namespace, name,
answered status), so a test asserts exactly what the operator asked and nothing
more: cert-manager's fake clientset actions, seen from the wire. What a test does
itself (seed objects, edit a Secret as a user, play the garbage collector or Kopf) goes
through the ``seed``/``read``/``edit``/``remove`` methods, which are not recorded.

``fail`` makes the next matching requests fail with a status (a 500, a 429 with
Retry-After, a 409...), the way client-go's reactors do.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from support.harness.kinds import BY_KIND, KINDS, Kind, Target, parse_path
from support.harness.patching import (
    JSON_PATCH,
    MERGE,
    STRATEGIC,
    PatchError,
    json_patch,
    merge_patch,
)
from support.harness.store import ApiError, Body, Store, WatchStream, not_found

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Call:
    """One request the operator made, as an audit log would show it."""

    verb: str  # get, list, watch, create, update, patch, delete
    resource: str  # the plural: secrets, agenttasks, serviceaccounts...
    subresource: str = ""  # status, token
    namespace: str = ""
    name: str = ""
    status: int = 200  # what the server answered

    @property
    def short(self) -> tuple[str, str, str]:
        return (self.verb, self.resource, self.subresource)

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = "/".join(p for p in (self.namespace, self.name) if p)
        return f"{self.verb} {resource} {where} -> {self.status}"


@dataclass
class Fault:
    verb: str
    resource: str
    status: int
    reason: str
    subresource: str = ""
    name: str | None = None
    times: int | None = 1  # None: every matching request
    retry_after: float | None = None

    def matches(self, verb: str, target: Target) -> bool:
        return (
            (self.verb, self.resource, self.subresource)
            == (verb, target.kind.plural, target.subresource)
            and self.name in (None, target.name)
            and self.times != 0
        )


@dataclass
class Reply:
    status: int
    body: Body | None = None
    stream: WatchStream | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeApiServer:
    def __init__(self, clock: Callable[[], datetime.datetime]) -> None:
        self.clock = clock
        self.store = Store(clock)
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.tokens: list[tuple[str, str, tuple[str, ...]]] = []  # (namespace, account, auds)

    # -- what tests do (not recorded) --------------------------------------------------

    def seed(self, obj: Body) -> Body:
        """Add an object as it would be after earlier events (status included)."""
        kind = BY_KIND[obj["kind"]]
        namespace = str(obj.get("metadata", {}).get("namespace") or "")
        if kind.namespaced and ("namespaces", "", namespace) not in self.store.objects:
            self.store.create(KINDS["namespaces"], "", {"metadata": {"name": namespace}})
        return self.store.create(kind, namespace, obj, keep_status=True)

    def read(self, plural: str, namespace: str, name: str) -> Body | None:
        try:
            return self.store.get(KINDS[plural], namespace, name)
        except ApiError:
            return None

    def edit(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> Body:
        """Merge-patch an object as someone else (status included)."""
        kind = KINDS[plural]
        current = self.store.get(kind, namespace, name)
        updated = current
        if set(patch) - {"status"} or not kind.status_subresource:
            updated = self.store.update(kind, current, merge_patch(current, patch), "")
        if kind.status_subresource and "status" in patch:
            new = merge_patch(updated, {"status": patch["status"]})
            updated = self.store.update(kind, updated, new, subresource="status")
        return updated

    def remove(self, plural: str, namespace: str, name: str) -> Body:
        """Delete as someone else: held by finalizers as any delete is."""
        return self.store.delete(KINDS[plural], namespace, name, {})

    def fail(
        self,
        verb: str,
        resource: str,
        status: int = 500,
        *,
        subresource: str = "",
        name: str | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
    ) -> None:
        reason = {404: "NotFound", 409: "Conflict", 429: "TooManyRequests", 403: "Forbidden"}
        self.faults.append(
            Fault(
                verb,
                resource,
                status,
                reason.get(status, "InternalError"),
                subresource,
                name,
                times,
                retry_after,
            )
        )

    def of(self, plural: str) -> list[Body]:
        return self.store.list(KINDS[plural], "", None)

    # -- what the operator does (recorded) ---------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        content_type: str,
        body: Any,
    ) -> Reply:
        target = parse_path(path)
        verb = self._verb(method, target, query)
        reply = self._faulted(verb, target) or self._answer(verb, target, query, content_type, body)
        sent = body.get("metadata") or {} if isinstance(body, dict) else {}
        name = target.name or str(sent.get("name") or "")
        call = Call(verb, target.kind.plural, target.subresource, target.namespace, name)
        self.calls.append(dataclasses.replace(call, status=reply.status))
        return reply

    @staticmethod
    def _verb(method: str, target: Target, query: Mapping[str, str]) -> str:
        if method == "GET":
            if target.name:
                return "get"
            return "watch" if query.get("watch", "").lower() == "true" else "list"
        return VERBS[method]

    def _faulted(self, verb: str, target: Target) -> Reply | None:
        for fault in self.faults:
            if fault.matches(verb, target):
                if fault.times is not None:
                    fault.times -= 1
                error = ApiError(fault.status, fault.reason, f"injected {fault.status}")
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                return Reply(fault.status, error.status_body(), headers=headers)
        return None

    def _answer(
        self, verb: str, target: Target, query: Mapping[str, str], content_type: str, body: Any
    ) -> Reply:
        try:
            return self._serve(verb, target, query, content_type, body)
        except ApiError as error:
            return Reply(error.status, error.status_body())
        except PatchError as error:
            return Reply(422, ApiError(422, "Invalid", str(error)).status_body())

    def _serve(
        self, verb: str, target: Target, query: Mapping[str, str], content_type: str, body: Any
    ) -> Reply:
        kind, store = target.kind, self.store
        if target.subresource == "token":
            return self._token(target, body)
        if target.subresource not in ("", "status") or (
            target.subresource == "status" and not kind.status_subresource
        ):
            raise ApiError(404, "NotFound", f"no subresource {target.subresource!r}")
        if verb == "get":
            return Reply(200, store.get(kind, target.namespace, target.name))
        if verb == "list":
            return Reply(200, self._list(kind, target.namespace, query))
        if verb == "watch":
            stream = WatchStream(kind, target.namespace, query.get("labelSelector"))
            store.open_watch(stream, query.get("resourceVersion", ""))
            return Reply(200, stream=stream)
        if verb == "create":
            return Reply(201, store.create(kind, target.namespace, body))
        if verb == "delete":
            preconditions = (body or {}).get("preconditions") or {}
            return Reply(200, store.delete(kind, target.namespace, target.name, preconditions))
        current = store.get(kind, target.namespace, target.name)
        if verb == "update":
            return Reply(200, store.update(kind, current, dict(body), target.subresource))
        return Reply(200, self._patch(kind, current, content_type, body, target.subresource))

    def _patch(
        self, kind: Kind, current: Body, content_type: str, patch: Any, subresource: str
    ) -> Body:
        media = content_type.split(";", maxsplit=1)[0].strip()
        if media in (MERGE, STRATEGIC):
            new = merge_patch(current, patch)
        elif media == JSON_PATCH:
            new = json_patch(current, patch)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {media!r}")
        return self.store.update(kind, current, new, subresource)

    def _list(self, kind: Kind, namespace: str, query: Mapping[str, str]) -> Body:
        items = self.store.list(kind, namespace, query.get("labelSelector"))
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        meta: Body = {"resourceVersion": str(self.store.version)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        if not kind.group:  # core lists carry no apiVersion/kind per item
            for item in page:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": meta,
            "items": page,
        }

    def _token(self, target: Target, request: Any) -> Reply:
        """TokenRequest: a fake token of an existing ServiceAccount."""
        if target.kind.plural != "serviceaccounts" or not target.name:
            raise ApiError(404, "NotFound", "no token subresource here")
        self.store.get(target.kind, target.namespace, target.name)  # 404 when missing
        spec = dict((request or {}).get("spec") or {})
        audiences = tuple(spec.get("audiences") or ())
        self.tokens.append((target.namespace, target.name, audiences))
        seconds = int(spec.get("expirationSeconds") or 3600)
        expires = self.clock() + datetime.timedelta(seconds=seconds)
        token = f"token-{target.namespace}-{target.name}-{len(self.tokens)}"
        return Reply(
            201,
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": spec,
                "status": {
                    "token": token,
                    "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            },
        )


def encode(reply: Reply) -> bytes:
    return json.dumps(reply.body or {}).encode()


__all__ = ["Call", "FakeApiServer", "Reply", "encode", "not_found"]
