"""Short-lived tokens of the agent's own ServiceAccount, from the TokenRequest API.

Backends that accept Kubernetes identities (Vault's kubernetes auth, STS web
identity) are logged in to as the agent, not as the operator; a TokenRequest token
is audience-bound and expires by itself, so nothing has to be cleaned up.
"""

from __future__ import annotations

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from agentcred.kube.calls import call
from agentcred.kube.errors import KubeError, subject

MIN_EXPIRATION = 600  # the API server refuses shorter tokens


async def request_token(
    api: ApiClient,
    namespace: str,
    service_account: str,
    audience: str,
    expiration_seconds: int = 600,
) -> str:
    """A token of ``namespace/service_account`` for ``audience``; KubeNotFound names the SA."""
    what = subject("ServiceAccount", namespace, service_account)
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience],
            "expirationSeconds": max(MIN_EXPIRATION, expiration_seconds),
        },
    }
    core = CoreV1Api(api)
    review = await call(
        what, core.create_namespaced_service_account_token, service_account, namespace, body
    )
    token = (review.get("status") or {}).get("token")
    if not isinstance(token, str) or not token:
        raise KubeError(f"{what}: the TokenRequest answer holds no token")
    return token
