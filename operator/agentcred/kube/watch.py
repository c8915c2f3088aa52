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
from collections.abc import Awaitable, Callable
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


def relist_events(known: dict[str, Body], listed: dict[str, Body]) -> list[tuple[str, Body]]:
    """What changed between what a watch knew and a fresh list (both keyed by uid)."""
    events = [("DELETED", obj) for uid, obj in known.items() if uid not in listed]
    for uid, obj in listed.items():
        if uid not in known:
            events.append(("ADDED", obj))
        elif _version(known[uid]) != _version(obj):
            events.append(("MODIFIED", obj))
    return events


@dataclass
class _Watcher:
    list_method: Method
    args: tuple[str, ...]
    what: str
    label_selector: str | None
    on_event: OnEvent
    stopped: asyncio.Event
    known: dict[str, Body] = field(default_factory=dict)  # uid -> last seen skeleton
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
            keep=skeleton,
            label_selector=self.label_selector,
        )
        result = await _until(stop, listing)
        if result is None:
            return
        items, version = result
        listed = {_uid(item): item for item in items}
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
                self.known[_uid(obj)] = skeleton(obj)
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


KEPT_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "ownerReferences")


def skeleton(obj: Body) -> Body:
    """What a watch remembers of an object: identity, version, labels, owners, phase.

    Never a Secret's data: with thousands of generated Secrets, keeping whole objects
    made the watch cache the operator's largest allocation (cert-manager made the same
    cut). Events re-derived from a re-list carry the skeleton, which is all the
    consumers (drift, pod binding) read."""
    meta = obj.get("metadata") or {}
    kept: Body = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in KEPT_METADATA if k in meta},
    }
    phase = (obj.get("status") or {}).get("phase")
    if phase is not None:
        kept["status"] = {"phase": phase}
    return kept


def _uid(obj: Body) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _version(obj: Body) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
