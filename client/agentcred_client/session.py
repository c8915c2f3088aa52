"""One AgentTask seen from its creator, on ``kubernetes_asyncio``: create it, wait (a
watch, not polling) until it is Active or refused, read its generated Secrets, end it,
and wait for its ``Revoked`` condition. Both faces of the client (sync and async) run
these coroutines; the sync one on a private event-loop thread (``runner.py``)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from agentcred_client import bodies, names
from agentcred_client.errors import TaskFailed, TaskTimeout

log = logging.getLogger("agentcred_client")

# The library picks json-patch for a dict body unless told (the operator's kube/resources.py
# explains); the generated signatures do not list the private keyword, hence a mapping.
MERGE_PATCH: dict[str, Any] = {"_content_type": "application/merge-patch+json"}
WATCH_SECONDS = 240  # one watch request's server-side timeout; it is then re-opened
GONE_PAUSE = 1.0  # seconds before re-reading after a second 410 Gone in a row
REFUSED_AT_CREATE = {400, 403, 409, 422}  # admission, RBAC, a taken name, a bad spec


@dataclass(frozen=True)
class Task:
    """The handle a session yields: the task's name and its credentials' values as read
    from the generated Secrets when it became Active."""

    name: str
    namespace: str
    correlation_id: str
    secrets: Mapping[str, Mapping[str, str]] = field(repr=False)  # credential -> keys
    secret_names: Mapping[str, str] = field(default_factory=dict)  # credential -> Secret

    def secret(self, credential: str) -> dict[str, str]:
        """One credential's keys, decoded (a copy)."""
        try:
            return dict(self.secrets[credential])
        except KeyError:
            known = ", ".join(sorted(self.secrets)) or "none"
            raise KeyError(f"{credential!r} is not a credential of this task ({known})") from None

    @property
    def env(self) -> dict[str, str]:
        """Every credential's keys in one mapping; ``EnvConflict`` if two credentials hold
        the same key with different values."""
        return bodies.merge_env(self.secrets, task=self.name)

    def values(self) -> list[str]:
        """Every value handed out (to keep them out of a failure reason)."""
        return [v for data in self.secrets.values() for v in data.values()]


def _status_of(exc: ApiException) -> tuple[str, str]:
    """(reason, message) of an API error, from the server's Status body when it has one."""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        status = {}
    return str(status.get("reason") or exc.reason or exc.status), str(
        status.get("message") or exc.reason or ""
    )


T = TypeVar("T")
RETRIED = {429, 500, 502, 503, 504}  # the server says "not now": nothing was done
ATTEMPTS = 6


async def retried(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, again after a pause while the API server answers "not now" (429 with
    Retry-After, e.g. "storage is (re)initializing" after a CRD update, or a 5xx), as
    client-go does; the last answer is raised."""
    for attempt in range(ATTEMPTS):
        try:
            return await call()
        except ApiException as exc:
            if exc.status not in RETRIED or attempt == ATTEMPTS - 1:
                raise
            pause = _retry_after(exc) or min(0.2 * 2**attempt, 5.0)
            log.debug("API server answered %s; retrying in %.1f s", exc.status, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


def _retry_after(exc: ApiException) -> float | None:
    headers: Mapping[str, str] = exc.headers or {}
    try:
        return min(float(headers.get("Retry-After", "")), 10.0)
    except ValueError:
        return None


class Session:
    """The calls for one task (named ``name`` in ``namespace``)."""

    def __init__(self, api: ApiClient, namespace: str, name: str, correlation_id: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.correlation_id = correlation_id
        self.custom = CustomObjectsApi(api)
        self.handle: Task | None = None

    # -- create -------------------------------------------------------------------------

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            created: dict[str, Any] = await retried(
                lambda: self.custom.create_namespaced_custom_object(
                    names.GROUP, names.VERSION, self.namespace, names.TASKS, dict(body)
                )
            )
        except ApiException as exc:
            if exc.status in REFUSED_AT_CREATE:
                reason, message = _status_of(exc)
                raise TaskFailed(reason, message, name=self.name) from None
            raise
        return created

    # -- wait ---------------------------------------------------------------------------

    async def _read(self) -> tuple[dict[str, Any], str]:
        """The task and the version to watch from: a list of the one name, so the version
        is the collection's, current (an object's own version may be older than what the
        server still keeps for watches: a task unchanged for minutes)."""
        found: dict[str, Any] = await retried(
            lambda: self.custom.list_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                self.namespace,
                names.TASKS,
                field_selector=f"metadata.name={self.name}",
            )
        )
        for item in found.get("items") or []:
            if (item.get("metadata") or {}).get("name") == self.name:
                item.setdefault("apiVersion", names.API_VERSION)
                return item, str(found["metadata"]["resourceVersion"])
        raise TaskFailed("Deleted", "the AgentTask is gone", name=self.name)

    async def _changes(self) -> AsyncGenerator[dict[str, Any], None]:
        """The task as it is now, then as each change leaves it (one watch, re-opened
        from the last resourceVersion; listed again after 410 Gone)."""
        body, version = await self._read()
        yield body
        gone_again = False
        while True:
            stream = watch.Watch()
            try:
                async for event in stream.stream(
                    self.custom.list_namespaced_custom_object,
                    names.GROUP,
                    names.VERSION,
                    self.namespace,
                    names.TASKS,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                ):
                    obj = event["raw_object"]
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    if event["type"] == "BOOKMARK" or meta.get("name") != self.name:
                        continue
                    gone_again = False
                    if event["type"] == "DELETED":
                        raise TaskFailed("Deleted", "the AgentTask was deleted", name=self.name)
                    yield obj
            except ApiException as exc:
                if exc.status != 410:
                    raise
                if gone_again:  # 410 again from a version just read: not a hot loop
                    await asyncio.sleep(GONE_PAUSE)
                gone_again = True
                body, version = await self._read()
                yield body
            finally:
                await stream.close()

    async def wait(
        self,
        done: Callable[[bodies.State], bool],
        budget: float | None,
        what: str,
        *,
        refuse: bool,
        pause_for_approval: bool,
    ) -> dict[str, Any]:
        """The task once ``done(state)``; with ``refuse``, TaskFailed when it ends first.
        TaskTimeout after ``budget`` seconds, not counting (``pause_for_approval``) the
        time its Ready reason is ``AwaitingApproval``."""
        loop = asyncio.get_running_loop()
        remaining = budget
        counting_since: float | None = None
        try:
            async with asyncio.timeout(None) as deadline:
                async with aclosing(self._changes()) as changes:
                    async for body in changes:
                        state = bodies.state_of(body)
                        if done(state):
                            return body
                        if refuse and state.ended:
                            raise TaskFailed(
                                state.ready_reason or state.phase,
                                state.ready_message,
                                name=self.name,
                            )
                        if remaining is None:
                            continue
                        now = loop.time()
                        if pause_for_approval and state.awaiting_approval:
                            if counting_since is not None:
                                remaining -= now - counting_since
                                counting_since = None
                            deadline.reschedule(None)
                        elif counting_since is None:
                            counting_since = now
                            deadline.reschedule(now + max(remaining, 0.0))
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TaskTimeout(
                f"AgentTask {self.namespace}/{self.name} was not {what} within {budget:g} s",
                name=self.name,
            ) from None
        raise TaskFailed("Deleted", "the AgentTask's watch ended", name=self.name)

    async def wait_active(self, budget: float | None) -> dict[str, Any]:
        return await self.wait(
            lambda s: s.active, budget, "Active", refuse=True, pause_for_approval=True
        )

    async def wait_revoked(self, budget: float | None) -> dict[str, Any]:
        return await self.wait(
            lambda s: s.revoked, budget, "Revoked", refuse=False, pause_for_approval=False
        )

    # -- read ---------------------------------------------------------------------------

    async def read(self, body: Mapping[str, Any]) -> Task:
        """The handle: every generated Secret (names from the task's status) decoded."""
        core = CoreV1Api(self.api)
        by_credential = bodies.secret_names(body)
        values = {}
        for credential, secret in by_credential.items():
            obj = await retried(partial(core.read_namespaced_secret, secret, self.namespace))
            values[credential] = bodies.decode(obj.data)
        self.handle = Task(self.name, self.namespace, self.correlation_id, values, by_credential)
        return self.handle

    # -- end ----------------------------------------------------------------------------

    async def end(self, failure: str | None = None) -> None:
        """``spec.completed: true``, with ``spec.failureReason`` when ``failure`` (the
        task ends Failed, ``AgentReported``). A task already gone is left alone; a
        failure reason already set (set once) is kept."""
        spec: dict[str, Any] = {"completed": True}
        if failure:
            spec["failureReason"] = failure
        try:
            await self._patch_spec(spec)
        except ApiException as exc:
            if exc.status == 404:
                return
            if exc.status != 422 or not failure:
                raise
            await self._patch_spec({"completed": True})  # a reason was already set

    async def _patch_spec(self, spec: Mapping[str, Any]) -> None:
        await retried(
            lambda: self.custom.patch_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                self.namespace,
                names.TASKS,
                self.name,
                {"spec": dict(spec)},
                **MERGE_PATCH,
            )
        )

    # -- a Job bound to the task --------------------------------------------------------

    async def create_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        batch = BatchV1Api(self.api)
        job = await batch.create_namespaced_job(self.namespace, cast(Any, dict(body)))
        result: dict[str, Any] = self.api.sanitize_for_serialization(job)
        return result

    async def start_job(self, name: str) -> None:
        await BatchV1Api(self.api).patch_namespaced_job(
            name, self.namespace, {"spec": {"suspend": False}}, **MERGE_PATCH
        )

    async def delete_job(self, name: str) -> None:
        try:
            await BatchV1Api(self.api).delete_namespaced_job(
                name, self.namespace, propagation_policy="Background"
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
