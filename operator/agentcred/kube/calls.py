"""The seam every request of this layer goes through: JSON in, JSON out, typed errors.

Responses are read as the API server's own JSON instead of the library's generated
models: the models drop fields they do not know, turn timestamps into ``datetime``
and back into a different string form, and cost a round of (de)serialisation for
nothing. Reading raw means checking the status code here, since the library only
raises for non-2xx answers when it decodes the body itself.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from agentcred.kube.client import REQUEST_TIMEOUT
from agentcred.kube.errors import KubeError, KubeNotFound, translate
from agentcred.kube.objects import Body
from agentcred.kube.request_slots import turn

Method = Callable[..., Awaitable[Any]]
PAGE_SIZE = 500
T = TypeVar("T")


async def call(what: str, method: Method, *args: Any, **kwargs: Any) -> Body:
    """Call a generated API method about ``what``; the decoded JSON body, or a KubeError."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        async with turn():  # fair between namespaces while the API server is busy
            response = await method(*args, _preload_content=False, **kwargs)
            data = await read_checked(response)
    except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
        raise translate(exc, what) from exc
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise KubeError(f"{what}: the API server answered with something not JSON") from exc
    if not isinstance(body, dict):
        raise KubeError(f"{what}: the API server answered with JSON that is not an object")
    return body


async def read_checked(response: aiohttp.ClientResponse) -> bytes:
    """Read and release a raw response; the library's ``ApiException`` if it is not 2xx."""
    try:
        data = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        exc = ApiException(status=response.status, reason=response.reason)
        exc.body, exc.headers = data, response.headers
        raise exc
    return data


async def open_stream(
    what: str, method: Method, *args: Any, **kwargs: Any
) -> aiohttp.ClientResponse:
    """Start a streaming request (a watch); the open response, or a KubeError. Caller closes it."""
    try:
        response: aiohttp.ClientResponse = await method(*args, _preload_content=False, **kwargs)
        if not 200 <= response.status <= 299:
            await read_checked(response)  # raises the library's ApiException
    except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
        raise translate(exc, what) from exc
    return response


async def get_or_none(what: str, method: Method, *args: Any, **kwargs: Any) -> Body | None:
    """``call`` for reads where a missing object is an answer, not an error."""
    try:
        return await call(what, method, *args, **kwargs)
    except KubeNotFound:
        return None


async def list_all(
    what: str, method: Method, *args: Any, label_selector: str | None = None
) -> tuple[list[Body], str]:
    """Every item of a (paginated) list, and the list's resourceVersion to watch from.

    Items of core lists come without ``apiVersion``/``kind``; they are filled in from
    the list so that listed objects look exactly like watched ones.
    """
    return await list_kept(what, method, *args, keep=_whole, label_selector=label_selector)


async def list_kept(
    what: str,
    method: Method,
    *args: Any,
    keep: Callable[[Body], T],
    label_selector: str | None = None,
) -> tuple[list[T], str]:
    """``list_all``, keeping only ``keep(item)`` of each item as each page arrives: with
    thousands of objects, whole pages are never held at once (a restart's peak)."""
    items: list[T] = []
    options: dict[str, Any] = {"limit": PAGE_SIZE}
    if label_selector:
        options["label_selector"] = label_selector
    while True:
        page = await call(what, method, *args, **options)
        items.extend(keep(_with_kind(item, page)) for item in page.get("items") or [])
        meta = page.get("metadata") or {}
        if not meta.get("continue"):
            return items, str(meta.get("resourceVersion") or "")
        options["_continue"] = meta["continue"]
        del page


def _whole(item: Body) -> Body:
    return item


def _with_kind(item: Body, page: Body) -> Body:
    list_kind = str(page.get("kind") or "")
    item.setdefault("apiVersion", page.get("apiVersion"))
    if list_kind.endswith("List"):
        item.setdefault("kind", list_kind.removesuffix("List"))
    return item
