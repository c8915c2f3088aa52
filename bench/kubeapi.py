"""A small thread-safe Kubernetes REST client for the benchmark's load generator.

The load generator shares the machine's two cores with the operator it measures, so it
must be cheap: plain JSON over one pooled ``requests`` session (no model classes, no
deserialisation into objects), metadata-only watches (``PartialObjectMetadata``), and
nothing else. The testbed's admin client certificate authenticates.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
TIMEOUT = 30.0
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
ATTEMPTS = 3


class KubeError(RuntimeError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    obj: dict[str, Any]
    at: float  # time.monotonic() when the event line arrived


class Kube:
    """JSON calls to the API server; safe to share between threads."""

    def __init__(self, server: str, pki: Path, pool: int = 64) -> None:
        self.server = server.rstrip("/")
        self._http = requests.Session()
        # Passed with every request: a session-level ``verify`` loses to REQUESTS_CA_BUNDLE.
        self._ca = str(pki / "ca.crt")
        self._http.cert = (str(pki / "admin.crt"), str(pki / "admin.key"))
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool)
        self._http.mount("https://", adapter)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Kube:
        return cls(env["KUBE_API_SERVER"], Path(env["KUBE_CA_FILE"]).parent)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        accept: str = "application/json",
        ok: tuple[int, ...] = (),
    ) -> dict[str, Any] | None:
        """One request; 2xx returns the JSON body, a status in ``ok`` returns None."""
        data = None if body is None else json.dumps(body)
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in range(ATTEMPTS):
            try:
                response = self._http.request(
                    method,
                    self.server + path,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=TIMEOUT,
                    verify=self._ca,
                )
                break
            except (requests.Timeout, requests.ConnectionError):
                # A loaded API server can take longer than TIMEOUT: every call the
                # benchmark makes is idempotent or tells (409) that it was done.
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(1 + attempt)
        if attempt and method == "POST" and response.status_code == 409:
            return {}  # an earlier attempt that timed out did create it
        if response.status_code in ok:
            return None
        if response.status_code >= 300:
            raise KubeError(response.status_code, response.text)
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    def text(self, path: str) -> str:
        """A plain-text GET (the API server's ``/metrics``)."""
        response = self._http.get(
            self.server + path, headers={"Accept": "text/plain"}, timeout=TIMEOUT, verify=self._ca
        )
        if response.status_code >= 300:
            raise KubeError(response.status_code, response.text)
        return response.text

    def request_counts(self) -> dict[str, float]:
        """``apiserver_request_total`` by "VERB resource[/subresource]" (all clients)."""
        counts: dict[str, float] = {}
        for line in self.text("/metrics").splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(LABEL.findall(line.split("{", 1)[1].rsplit("}", 1)[0]))
            key = f"{labels.get('verb', '?')} {labels.get('resource', '?')}"
            if labels.get("subresource"):
                key += "/" + labels["subresource"]
            counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return counts

    def get(self, path: str, **kwargs: Any) -> dict[str, Any] | None:
        return self.call("GET", path, ok=(404,), **kwargs)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result = self.call("POST", path, body)
        assert result is not None
        return result

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self.call(
            "PATCH", path, body, content_type="application/merge-patch+json", ok=(404,)
        )

    def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Server-side apply (create or update, idempotent)."""
        return self.call(
            "PATCH",
            path,
            body,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": "agentcred-bench", "force": "true"},
        )

    def delete(self, path: str, **params: str) -> None:
        self.call("DELETE", path, params=params or None, ok=(404, 409))

    def list_items(
        self, path: str, *, selector: str = "", metadata_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection, page by page (500 at a time)."""
        token = ""
        while True:
            params = {"limit": "500"}
            if selector:
                params["labelSelector"] = selector
            if token:
                params["continue"] = token
            page = self.call(
                "GET",
                path,
                params=params,
                accept=METADATA_LIST if metadata_only else "application/json",
            )
            assert page is not None
            yield from page.get("items") or []
            token = page.get("metadata", {}).get("continue", "")
            if not token:
                return

    def list_version(self, path: str, selector: str = "") -> tuple[list[dict[str, Any]], str]:
        """Items (metadata only) and the list's resourceVersion, to watch from."""
        params = {"labelSelector": selector} if selector else {}
        page = self.call("GET", path, params=params, accept=METADATA_LIST)
        assert page is not None
        return page.get("items") or [], str(page["metadata"]["resourceVersion"])

    def watch(
        self,
        path: str,
        selector: str,
        on_event: Callable[[WatchEvent], None],
        stop: threading.Event,
        resource_version: str,
    ) -> None:
        """Metadata-only watch from ``resource_version`` until ``stop``; resumes on ends.

        A 410 Gone (history compacted) re-lists and reports the whole list as one
        ``RELIST`` event (``obj["items"]``), so a consumer can diff what it knew."""
        version = resource_version
        while not stop.is_set():
            params = {
                "watch": "1",
                "allowWatchBookmarks": "true",
                "resourceVersion": version,
                "timeoutSeconds": "60",
            }
            if selector:
                params["labelSelector"] = selector
            try:
                with self._http.get(
                    self.server + path,
                    params=params,
                    headers={"Accept": METADATA_ONLY},
                    stream=True,
                    timeout=(10, 90),
                    verify=self._ca,
                ) as response:
                    if response.status_code == 410:
                        version = self._relist(path, selector, on_event)
                        continue
                    if response.status_code >= 300:
                        raise KubeError(response.status_code, response.text)
                    for line in _lines(response):
                        if stop.is_set():
                            return
                        event = json.loads(line)
                        now = time.monotonic()
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            if obj.get("code") == 410:
                                version = self._relist(path, selector, on_event)
                                break
                            continue
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        on_event(WatchEvent(event["type"], obj, now))
            except (requests.RequestException, ValueError):
                if stop.wait(0.5):
                    return

    def _relist(self, path: str, selector: str, on_event: Callable[[WatchEvent], None]) -> str:
        items, version = self.list_version(path, selector)
        on_event(WatchEvent("RELIST", {"items": items}, time.monotonic()))
        return version

    def close(self) -> None:
        self._http.close()


def _lines(response: requests.Response) -> Iterator[bytes]:
    """Lines of a streamed body as soon as each is complete (``iter_lines`` would wait
    for a 512-byte chunk, delaying an event until the next one arrives)."""
    pending = b""
    for chunk in response.iter_content(chunk_size=None):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line


def ns_path(namespace: str, plural: str, group: str = "", version: str = "v1") -> str:
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{base}/namespaces/{namespace}/{plural}"


def parse_time(value: Any) -> datetime.datetime | None:
    """An API timestamp (RFC 3339, ``Z`` or offset); None for an empty one."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
