"""``AgentTasks``: run agent work under an AgentTask, from a launcher or from the agent's
own pod, synchronously (``run``, ``job``) or in asyncio (``arun``, ``ajob``)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)

from agentcred_client import bodies, names, tracing
from agentcred_client.errors import TaskFailed
from agentcred_client.runner import LoopThread
from agentcred_client.session import Session, Task

log = logging.getLogger("agentcred_client")
ApiSource = ApiClient | Callable[[], ApiClient | Awaitable[ApiClient]]
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_READY_TIMEOUT = 120.0
DEFAULT_REVOKE_TIMEOUT = 120.0
SPAN = "agentcred.task"


@contextmanager
def _reported(what: str) -> Iterator[None]:
    """An error while handling the caller's exception is logged, not raised: the caller's
    exception is the one that says what went wrong."""
    try:
        yield
    except Exception as exc:
        log.warning("%s: %s", what, exc)


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(SERVICE_TOKEN_FILENAME).exists()


async def default_api() -> ApiClient:
    """An ApiClient from the pod's ServiceAccount when in a pod, else from the kubeconfig
    (``$KUBECONFIG`` or ``~/.kube/config``, its current context)."""
    configuration = Configuration()
    if _in_cluster():
        InClusterConfigLoader(SERVICE_TOKEN_FILENAME, SERVICE_CERT_FILENAME).load_and_set(
            configuration
        )
    else:
        # $KUBECONFIG read now, not when the library was imported (its default is fixed then)
        await config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or "~/.kube/config",
            client_configuration=configuration,
            persist_config=False,
        )
    return ApiClient(configuration)


def _default_namespace() -> str:
    if NAMESPACE_FILE.exists():
        return NAMESPACE_FILE.read_text().strip()
    raise ValueError("AgentTasks(namespace=...) is required outside a pod")


@dataclass(frozen=True)
class LaunchedJob:
    """A Job bound to its AgentTask (both named ``name``), started once the task was Active."""

    name: str
    namespace: str
    task: str
    correlation_id: str
    secret_names: Mapping[str, str] = field(default_factory=dict)  # credential -> Secret


@dataclass(frozen=True)
class _Request:
    credentials: Sequence[str]
    service_account: str | None
    deadline_seconds: int | None
    labels: Mapping[str, str] | None
    ready_timeout: float | None
    name: str | None
    correlation_id: str | None


class AgentTasks:
    """AgentTasks in one namespace (default: the pod's). ``api``: a ``kubernetes_asyncio``
    ApiClient (the caller's to close), or a callable returning one (or an awaitable of
    one), called once per event loop that uses it (the sync methods run on a private loop
    thread); by default one is made from the in-cluster config or the kubeconfig. Clients
    made here are closed by ``close()`` / ``aclose()`` (or leaving ``with`` /
    ``async with``)."""

    def __init__(self, namespace: str | None = None, api: ApiSource | None = None) -> None:
        self.namespace = namespace or _default_namespace()
        self._source = api
        self._apis: dict[asyncio.AbstractEventLoop, tuple[ApiClient, bool]] = {}
        self._runner = LoopThread()

    # -- plumbing -----------------------------------------------------------------------

    async def _api(self) -> ApiClient:
        loop = asyncio.get_running_loop()
        if loop not in self._apis:
            source = self._source
            if isinstance(source, ApiClient):
                self._apis[loop] = (source, False)
            else:
                made = source() if source is not None else default_api()
                api = await made if inspect.isawaitable(made) else made
                self._apis[loop] = (api, True)  # made here, for this loop: ours to close
        return self._apis[loop][0]

    async def aclose(self) -> None:
        """Close the ApiClient made for the running loop (not an ApiClient given as ``api``)."""
        api, owned = self._apis.pop(asyncio.get_running_loop(), (None, False))
        if api is not None and owned:
            await api.close()

    def close(self) -> None:
        """Close what the sync methods opened: their ApiClient and loop thread."""
        if self._runner.started:
            self._runner.call(self.aclose())
        self._runner.stop()

    def __enter__(self) -> AgentTasks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AgentTasks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- one session --------------------------------------------------------------------

    async def _start(
        self,
        request: _Request,
        traceparent: str | None,
        *,
        pod_selector: Mapping[str, str] | None = None,
        owner: Mapping[str, Any] | None = None,
    ) -> tuple[Session, Task]:
        """Create the task and wait until it is Active; its Secrets read. A refusal
        raises TaskFailed; anything else (a timeout, a cancellation) ends the task with
        a failure reason first."""
        name = request.name or bodies.new_task_name()
        cid = request.correlation_id or bodies.new_correlation_id()
        session = Session(await self._api(), self.namespace, name, cid)
        await session.create(
            bodies.task_body(
                name=name,
                namespace=self.namespace,
                credentials=request.credentials,
                service_account=request.service_account,
                deadline_seconds=request.deadline_seconds,
                labels=request.labels,
                correlation_id=cid,
                traceparent=traceparent,
                pod_selector=pod_selector,
                owner=owner,
            )
        )
        try:
            body = await session.wait_active(request.ready_timeout)
            return session, await session.read(body)
        except TaskFailed:
            raise  # the operator ended it already
        except BaseException as exc:
            await session.end(bodies.failure_reason(exc))
            raise

    @staticmethod
    async def _finish(
        session: Session,
        exc: BaseException | None,
        wait_revoked: bool,
        revoke_timeout: float | None,
    ) -> None:
        hidden = session.handle.values() if session.handle is not None else []
        await session.end(bodies.failure_reason(exc, hidden) if exc is not None else None)
        if wait_revoked:
            await session.wait_revoked(revoke_timeout)

    @contextmanager
    def run(
        self,
        credentials: Sequence[str],
        service_account: str | None = None,
        deadline_seconds: int | None = None,
        labels: Mapping[str, str] | None = None,
        ready_timeout: float | None = DEFAULT_READY_TIMEOUT,
        wait_revoked: bool = False,
        name: str | None = None,
        *,
        correlation_id: str | None = None,
        revoke_timeout: float | None = DEFAULT_REVOKE_TIMEOUT,
    ) -> Iterator[Task]:
        """A task for the block: Active with its credentials on entry, completed on
        exit (Failed, ``AgentReported``, with the exception's message when one leaves the
        block); with ``wait_revoked`` the exit returns once it is ``Revoked``."""
        request = _Request(
            credentials, service_account, deadline_seconds, labels, ready_timeout, name,
            correlation_id,
        )  # fmt: skip
        with tracing.span(SPAN, {"agentcred.namespace": self.namespace}):
            session, handle = self._runner.call(self._start(request, tracing.traceparent()))
            try:
                yield handle
            except BaseException as exc:
                with _reported("ending the failed task"):
                    self._runner.call(self._finish(session, exc, wait_revoked, revoke_timeout))
                raise
            self._runner.call(self._finish(session, None, wait_revoked, revoke_timeout))

    @asynccontextmanager
    async def arun(
        self,
        credentials: Sequence[str],
        service_account: str | None = None,
        deadline_seconds: int | None = None,
        labels: Mapping[str, str] | None = None,
        ready_timeout: float | None = DEFAULT_READY_TIMEOUT,
        wait_revoked: bool = False,
        name: str | None = None,
        *,
        correlation_id: str | None = None,
        revoke_timeout: float | None = DEFAULT_REVOKE_TIMEOUT,
    ) -> AsyncIterator[Task]:
        """``run`` for asyncio."""
        request = _Request(
            credentials, service_account, deadline_seconds, labels, ready_timeout, name,
            correlation_id,
        )  # fmt: skip
        with tracing.span(SPAN, {"agentcred.namespace": self.namespace}):
            session, handle = await self._start(request, tracing.traceparent())
            try:
                yield handle
            except BaseException as exc:
                with _reported("ending the failed task"):
                    await self._finish(session, exc, wait_revoked, revoke_timeout)
                raise
            await self._finish(session, None, wait_revoked, revoke_timeout)

    # -- a Job bound to a task ----------------------------------------------------------

    async def ajob(
        self,
        credentials: Sequence[str],
        image: str,
        command: Sequence[str] | None = None,
        args: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        service_account: str | None = None,
        deadline_seconds: int | None = None,
        labels: Mapping[str, str] | None = None,
        ready_timeout: float | None = DEFAULT_READY_TIMEOUT,
        name: str | None = None,
        *,
        mount_path: str | None = None,
        backoff_limit: int = 0,
        ttl_seconds_after_finished: int | None = None,
        pod_spec: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> LaunchedJob:
        """Create a Job bound to a new task (docs/client.md, "A Job bound to its task"):
        the Job first, suspended; the task owned by it, selecting its pods; the Job
        started once the task is Active. A task that is refused or times out deletes the
        Job (TaskFailed / TaskTimeout raised)."""
        name = name or bodies.new_task_name()
        secrets = {c: f"{name}-{c}" for c in credentials}
        if any(len(s) > 253 for s in secrets.values()):
            raise ValueError("name: too long for its Secrets' names (<task>-<credential>)")
        request = _Request(
            credentials, service_account, deadline_seconds, labels, ready_timeout, name,
            correlation_id,
        )  # fmt: skip
        with tracing.span(SPAN, {"agentcred.namespace": self.namespace}):
            traceparent = tracing.traceparent()
            api = await self._api()
            jobs = Session(api, self.namespace, name, "")
            job = await jobs.create_job(
                bodies.job_body(
                    name=name,
                    namespace=self.namespace,
                    task=name,
                    image=image,
                    command=command,
                    args=args,
                    env=env,
                    service_account=service_account,
                    secrets_by_credential=secrets,
                    mount_path=mount_path,
                    labels=labels,
                    backoff_limit=backoff_limit,
                    ttl_seconds_after_finished=ttl_seconds_after_finished,
                    pod_spec=pod_spec,
                )
            )
            try:
                session, _ = await self._start(
                    request,
                    traceparent,
                    pod_selector={names.TASK_LABEL: name},
                    owner=bodies.owner_reference(job),
                )
                await session.start_job(name)
            except BaseException:
                await jobs.delete_job(name)
                raise
        return LaunchedJob(name, self.namespace, name, session.correlation_id, secrets)

    def job(
        self,
        credentials: Sequence[str],
        image: str,
        command: Sequence[str] | None = None,
        args: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        service_account: str | None = None,
        deadline_seconds: int | None = None,
        labels: Mapping[str, str] | None = None,
        ready_timeout: float | None = DEFAULT_READY_TIMEOUT,
        name: str | None = None,
        *,
        mount_path: str | None = None,
        backoff_limit: int = 0,
        ttl_seconds_after_finished: int | None = None,
        pod_spec: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> LaunchedJob:
        """``ajob`` for synchronous code."""
        return self._runner.call(
            self.ajob(
                credentials,
                image,
                command,
                args,
                env,
                service_account,
                deadline_seconds,
                labels,
                ready_timeout,
                name,
                mount_path=mount_path,
                backoff_limit=backoff_limit,
                ttl_seconds_after_finished=ttl_seconds_after_finished,
                pod_spec=pod_spec,
                correlation_id=correlation_id,
            )
        )
