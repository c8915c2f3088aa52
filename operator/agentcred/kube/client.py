"""Build the one API client the operator shares, from in-cluster or kubeconfig settings.

In a pod the ServiceAccount token is re-read as the kubelet rotates it (the library's
refresh hook does that). Outside a pod, ``KUBECONFIG`` is read at call time: the
library's own default path is frozen when it is first imported, which is too early
for a process (or a test session) that sets the variable later.

The client library applies no timeout of its own; ``REQUEST_TIMEOUT`` is what
``agentcred.kube.calls`` passes with every request, and watches use their own. It bounds
connecting and each read, never the wait for a free pooled connection: under a burst,
queueing for the pool is back-pressure, not a failure to retry from the top.

The library's HTTP session reads the environment on every request (``trust_env``:
``~/.netrc`` in a thread, proxy variables), which was 10-20 % of the operator's CPU in a
burst (docs/performance.md). The session is rebuilt on the same connector without it;
a proxy to the API server comes from the kubeconfig (``proxy-url``), which the library
passes with each request.
"""

from __future__ import annotations

import os

import aiohttp
import kopf
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)

from agentcred.kube.errors import KubeError
from agentcred.kube.request_slots import kopf_middleware

POOL_SIZE = 64  # concurrent connections to the API server
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=10, sock_read=30)
READ_BUFFER = 2**21  # a watch event may carry a large object (the library's own figure)
USER_AGENT = "agentcred"


async def make_api_client(*, pool_size: int = POOL_SIZE) -> ApiClient:
    """A fresh ``ApiClient``; the caller closes it (``await api.close()``)."""
    configuration = Configuration()
    try:
        if _in_cluster():
            loader = InClusterConfigLoader(SERVICE_TOKEN_FILENAME, SERVICE_CERT_FILENAME)
            loader.load_and_set(configuration)  # re-reads the token as the kubelet rotates it
        else:
            await config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG") or "~/.kube/config",
                client_configuration=configuration,
                persist_config=False,
            )
    except ConfigException as exc:
        raise KubeError(f"no usable Kubernetes configuration: {exc}") from exc
    configuration.connection_pool_maxsize = pool_size
    api = ApiClient(configuration)
    api.user_agent = USER_AGENT
    rest = api.rest_client
    connector = rest.pool_manager.connector
    rest.pool_manager.detach()  # keeps the connector (TLS settings, pool size) open
    rest.pool_manager = aiohttp.ClientSession(
        connector=connector, trust_env=False, read_bufsize=READ_BUFFER
    )
    return api


def make_kopf_session(info: kopf.ConnectionInfo) -> kopf.AiohttpSession:
    """The HTTP session Kopf uses for ``info``: the one Kopf would build itself (its
    headers, TLS and proxy), whose requests take fair turns (kube/request_slots.py)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers={**info.as_http_headers(), "User-Agent": f"{USER_AGENT}-kopf"},
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        middlewares=(kopf_middleware,),
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
    )


def _in_cluster() -> bool:
    """In a pod: the service host is set and the ServiceAccount token is mounted."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(
        SERVICE_TOKEN_FILENAME
    )


__all__ = ["POOL_SIZE", "REQUEST_TIMEOUT", "USER_AGENT", "ApiClient", "make_api_client"]
