"""List-then-watch of core objects the operator reacts to, filtered by the API server.

Kopf watches our custom resources; generated Secrets (restored when edited or
deleted) and the pods a task selects are watched here instead, with a server-side
label selector, so the operator never receives every Secret of the cluster.

The loop is the one informers use: list, report every object, watch from the list's
resourceVersion, resume from the last seen version when the stream ends or breaks,
and list again when the version is too old (410 Gone). A re-list is compared with
what was known, so objects deleted while nobody watched still arrive as DELETED.
Errors back off exponentially with jitter; a failing handler is logged and skipped.
Objects are the API server's JSON dicts; nothing about them is logged but names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from agentcred.kube.calls import Method, list_kept, open_stream
from agentcred.kube.errors import KubeError, KubeGone, KubeUnavailable, subject, translate
from agentcred.kube.objects import Body

log = logging.getLogger(__name__)

OnEvent = Callable[[str, Body], Awaitable[None]]
WATCH_SECONDS = 300  # the server ends each watch request after this; we resume from there
STREAM_TIMEOUT = aiohttp.ClientTimeout(sock_connect=10, sock_read=WATCH_SECONDS + 30)
T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential delays with jitter: 0.5 s, 1 s, 2 s ... up to ``cap``, each 50-100 %."""

    initial: float = 0.5
    cap: float = 30.0
    failures: int = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        delay = min(self.cap, self.initial * 2.0**self.failures)
        self.failures += 1
        jittered = delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not cryptography)
        return max(jittered, retry_after or 0.0)

    def reset(self) -> None:
        self.failures = 0


async def watch_secrets(
    api: ApiClient,
    label_selector: str,
    on_event: OnEvent,
    stopped: asyncio.Event,
    namespace: str | None = None,
) -> None:
    """Watch Secrets matching ``label_selector`` (in ``namespace`` or all) until ``stopped``."""
    core = CoreV1Api(api)
    lists = core.list_secret_for_all_namespaces, core.list_namespaced_secret
    await _watch_core(*lists, "Secrets", label_selector, on_event, stopped, namespace)


async def watch_pods(
    api: ApiClient,
    label_selector: str | None,
    on_event: OnEvent,
    stopped: asyncio.Event,
    namespace: str | None = None,
) -> None:
    """Watch Pods matching ``label_selector`` (None: all pods) until ``stopped``."""
    core = CoreV1Api(api)
    lists = core.list_pod_for_all_namespaces, core.list_namespaced_pod
    await _watch_core(*lists, "Pods", label_selector, on_event, stopped, namespace)


async def _watch_core(
    all_namespaces: Method,
    one_namespace: Method,
    kind: str,
    label_selector: str | None,
    on_event: OnEvent,
    stopped: asyncio.Event,
    namespace: str | None,
) -> None:
    method, args = (all_namespaces, ()) if namespace is None else (one_namespace, (namespace,))
    await watch_objects(
        method,
        *args,
        what=subject(kind, namespace),
        label_selector=label_selector,
        on_event=on_event,
        stopped=stopped,
    )


async def watch_objects(
    list_method: Method,
    *args: str,
    what: str,
    label_selector: str | None,
    on_event: OnEvent,
    stopped: asyncio.Event,
) -> None:
    """List-then-watch with a generated ``list_*`` method (called with ``*args``) until ``stopped``.

    ``on_event(type, obj)`` gets "ADDED", "MODIFIED" or "DELETED" and the object.
    """
    watcher = _Watcher(list_method, args, what, label_selector, on_event, stopped)
    await watcher.run()


def relist_events(
    known: Mapping[str, Remembered], listed: Mapping[str, Remembered]
) -> list[tuple[str, Body]]:
    """What changed between what a watch knew and a fresh list (both keyed by uid): only
    those are reported, so a re-list after 410 Gone is no storm of events for objects
    that did not change."""
    events = [("DELETED", seen.body()) for uid, seen in known.items() if uid not in listed]
    for uid, seen in listed.items():
        if uid not in known:
            events.append(("ADDED", seen.body()))
        elif known[uid].version != seen.version:
            events.append(("MODIFIED", seen.body()))
    return events


@dataclass
class _Watcher:
    list_method: Method
    args: tuple[str, ...]
    what: str
    label_selector: str | None
    on_event: OnEvent
    stopped: asyncio.Event
    known: dict[str, Remembered] = field(default_factory=dict)  # uid -> what was last seen
    version: str = ""  # resourceVersion to resume from; "" means list first
    backoff: Backoff = field(default_factory=Backoff)

    async def run(self) -> None:
        stop = asyncio.ensure_future(self.stopped.wait())
        try:
            while not self.stopped.is_set():
                await self._round(stop)
        finally:
            stop.cancel()

    async def _round(self, stop: asyncio.Future[Any]) -> None:
        try:
            if not self.version:
                await self._relist(stop)
            if self.version and not self.stopped.is_set():
                await self._stream(stop)
            return
        except KubeGone:
            log.info("Watch of %s: resource version too old, listing again", self.what)
            self.version = ""
            retry_after = None
        except KubeError as exc:
            log.warning("Watch of %s failed: %s", self.what, exc)
            retry_after = exc.retry_after if isinstance(exc, KubeUnavailable) else None
        except Exception:
            log.exception("Watch of %s failed unexpectedly", self.what)
            retry_after = None
        await _until(stop, asyncio.sleep(self.backoff.next_delay(retry_after)))

    async def _relist(self, stop: asyncio.Future[Any]) -> None:
        listing = list_kept(
            self.what,
            self.list_method,
            *self.args,
            keep=Remembered.of,
            label_selector=self.label_selector,
        )
        result = await _until(stop, listing)
        if result is None:
            return
        items, version = result
        listed = {seen.uid: seen for seen in items}
        events = relist_events(self.known, listed)
        self.known, self.version = listed, version
        self.backoff.reset()
        for type_, obj in events:
            await self._emit(type_, obj)

    async def _stream(self, stop: asyncio.Future[Any]) -> None:
        options: dict[str, Any] = {
            "watch": True,
            "resource_version": self.version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
            "_request_timeout": STREAM_TIMEOUT,
        }
        if self.label_selector:
            options["label_selector"] = self.label_selector
        opening = open_stream(self.what, self.list_method, *self.args, **options)
        response = await _until(stop, opening)
        if response is None:
            return
        try:
            while line := await _until(stop, self._readline(response)):
                await self._handle(json.loads(line))
        finally:
            response.close()

    async def _readline(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.content.readline()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate(exc, self.what) from exc

    async def _handle(self, event: Body) -> None:
        type_, obj = str(event.get("type")), event.get("object") or {}
        if type_ == "ERROR":
            raise _status_error(obj, self.what)
        if type_ != "BOOKMARK":
            if type_ == "DELETED":
                self.known.pop(_uid(obj), None)
            else:
                self.known[_uid(obj)] = Remembered.of(obj)
            self.backoff.reset()
            await self._emit(type_, obj)
        self.version = _version(obj) or self.version

    async def _emit(self, type_: str, obj: Body) -> None:
        try:
            await self.on_event(type_, obj)
        except Exception:
            meta = obj.get("metadata") or {}
            log.exception(
                "Watch of %s: handler failed on %s %s/%s",
                self.what,
                type_,
                meta.get("namespace"),
                meta.get("name"),
            )


async def _until(stop: asyncio.Future[Any], work: Awaitable[T]) -> T | None:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` completes first."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # let it unwind; our own cancellation still propagates
    return None if task.cancelled() else task.result()


def _status_error(status: Body, what: str) -> KubeError:
    """A watch ERROR event carries an API Status: map it like any other failure."""
    exc = ApiException(status=status.get("code") or 500, reason=status.get("reason"))
    exc.body = json.dumps({"reason": status.get("reason")}).encode()
    return translate(exc, what)


Owner = tuple[str, str, str, str, bool]  # apiVersion, kind, name, uid, controller


@dataclass(frozen=True, slots=True)
class Remembered:
    """What a watch remembers of an object between events: identity, version, labels,
    owners, phase (never a Secret's data), as flat tuples of strings; the strings every
    object repeats (namespace, label keys, kinds) are shared, and a label value equal
    to an owner's name (``agentcred.io/task``) is that name.

    With 20,000 generated Secrets this is the watch's whole memory: a skeleton kept as
    nested dicts cost ~1.9 KB each, this ~0.9 KB. ``body`` gives the skeleton back for
    the events a re-list derives; it is all the consumers (drift, pod binding) read."""

    uid: str
    version: str
    api_version: str
    kind: str
    namespace: str
    name: str
    labels: tuple[str, ...] = ()  # key, value, key, value...
    owners: tuple[Owner, ...] = ()
    phase: str | None = None

    @classmethod
    def of(cls, obj: Body) -> Remembered:
        meta = obj.get("metadata") or {}
        owners = tuple(
            (
                _shared(str(owner.get("apiVersion") or "")),
                _shared(str(owner.get("kind") or "")),
                str(owner.get("name") or ""),
                str(owner.get("uid") or ""),
                bool(owner.get("controller")),
            )
            for owner in meta.get("ownerReferences") or ()
        )
        names = {owner[2]: owner[2] for owner in owners}
        labels: list[str] = []
        for key, value in (meta.get("labels") or {}).items():
            labels += (_shared(str(key)), names.get(str(value), str(value)))
        phase = (obj.get("status") or {}).get("phase")
        return cls(
            uid=_uid(obj),
            version=_version(obj),
            api_version=_shared(str(obj.get("apiVersion") or "")),
            kind=_shared(str(obj.get("kind") or "")),
            namespace=_shared(str(meta.get("namespace") or "")),
            name=str(meta.get("name") or ""),
            labels=tuple(labels),
            owners=owners,
            phase=None if phase is None else _shared(str(phase)),
        )

    def body(self) -> Body:
        """The skeleton: the object's JSON with only these fields."""
        meta: Body = {"name": self.name, "uid": self.uid, "resourceVersion": self.version}
        if self.namespace:
            meta["namespace"] = self.namespace
        if self.labels:
            meta["labels"] = dict(zip(self.labels[::2], self.labels[1::2], strict=True))
        if self.owners:
            meta["ownerReferences"] = [
                {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": ctl}
                for api, kind, name, uid, ctl in self.owners
            ]
        kept: Body = {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta}
        if self.phase is not None:
            kept["status"] = {"phase": self.phase}
        return kept


def _shared(text: str) -> str:
    """One copy of a string many objects repeat (namespace, label keys, kinds)."""
    return sys.intern(text)


def _uid(obj: Body) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _version(obj: Body) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
