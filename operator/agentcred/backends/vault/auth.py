"""Logging in as the agent: Kubernetes auth, AppRole, or a child of a token in a Secret.

For every credential it issues, the operator logs in *as the agent* (Kubernetes auth with
a TokenRequest token of the task's ServiceAccount, an AppRole, or a child of a token kept
in a Secret) and gets a fresh token for that credential alone.

What the Vault side must allow:

* auth roles must issue renewable *service* tokens (the default) carrying the
  ``default`` policy (for ``renew-self``, ``revoke-self`` and ``sys/leases/renew``).
  Batch or non-renewable tokens are refused for dynamic credentials (BackendInvalidConfig):
  revoking them cannot end a lease, nor can their TTL be set to the credential's.
* ``tokenSecretRef``: the token in the Secret only creates a child token
  (``auth/token/create``: renewable, TTL = the credential's, metadata naming the task),
  so its policy must grant ``update`` on ``auth/token/create``; the child inherits its
  policies and is revoked whenever the parent is.

Right after login the token is renewed with ``increment`` = the credential's TTL (which
may shorten it; no token lives longer than the task needs), so if the operator is down
the token's TTL bounds the lease.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agentcred.backends.base import BackendInvalidConfig, IssueRequest
from agentcred.backends.vault.connection import Connection
from agentcred.backends.vault.errors import CREATE_CHILD_HINT
from agentcred.backends.vault.tokens import Token, revoke_quietly, token_from
from agentcred.models.resolved import (
    SecretKeyRef,
    VaultAppRoleAuth,
    VaultKubernetesAuth,
    VaultSpec,
)


async def authenticate(
    conn: Connection, request: IssueRequest, vault: VaultSpec, ttl: int
) -> Token:
    """Log in as the agent, the way the spec says: a fresh token for this credential."""
    client = conn.client(vault, request.correlation_id)
    if vault.auth.kubernetes is not None:
        return await _login_kubernetes(conn, request, vault.auth.kubernetes, client)
    if vault.auth.app_role is not None:
        return await _login_approle(conn, request, vault.auth.app_role, client)
    ref = vault.auth.token_secret_ref
    assert ref is not None  # validation.target checked that exactly one method is set
    parent = await request.identity.secret_value(ref.name, ref.key)
    client = conn.client(vault, request.correlation_id, parent)
    return await _create_child(conn, request, ref, client, ttl)


async def fit_ttl(
    conn: Connection, request: IssueRequest, vault: VaultSpec, token: Token, ttl: int
) -> Token:
    """Set the new token's TTL to the credential's (renew-self may shorten it)."""
    if vault.kv is not None:
        return token  # a static read uses the token for a moment only: no renew-self
    client = conn.client(vault, request.correlation_id, token.token)
    if token.batch or not token.renewable:
        await revoke_quietly(conn, client, token.accessor)
        raise BackendInvalidConfig(
            "the Vault auth role issues batch or non-renewable tokens; dynamic credentials "
            "need renewable service tokens (revoking one ends its leases)"
        )
    action = "setting the new token's TTL (auth/token/renew-self)"
    try:
        body = await conn.call(action, client.auth.token.renew_self, increment=ttl)
    except BaseException:
        await revoke_quietly(conn, client, token.accessor)
        raise
    return replace(token, ttl=token_from(body, action).ttl)


async def _login_kubernetes(
    conn: Connection, request: IssueRequest, k8s: VaultKubernetesAuth, client: Any
) -> Token:
    identity = request.identity
    jwt = await identity.token_for(k8s.audience)
    action = (
        f"the login at auth/{k8s.mount_path}/login as role {k8s.role!r} "
        f"(ServiceAccount {identity.namespace}/{identity.service_account})"
    )
    login = client.auth.kubernetes.login
    return await _login(conn, action, login, k8s.mount_path, role=k8s.role, jwt=jwt)


async def _login_approle(
    conn: Connection, request: IssueRequest, approle: VaultAppRoleAuth, client: Any
) -> Token:
    ref = approle.secret_id_ref
    secret_id = await request.identity.secret_value(ref.name, ref.key)
    action = f"the AppRole login at auth/{approle.mount_path}/login"
    login = client.auth.approle.login
    credentials = {"role_id": approle.role_id, "secret_id": secret_id}
    return await _login(conn, action, login, approle.mount_path, **credentials)


async def _login(
    conn: Connection,
    action: str,
    login: Callable[..., Any],
    mount_point: str,
    **credentials: str,
) -> Token:
    """One login call (never with the client's own token) and the token it returns."""
    body = await conn.call(
        action, login, use_token=False, mount_point=mount_point, login=True, **credentials
    )
    return token_from(body, action)


async def _create_child(
    conn: Connection, request: IssueRequest, ref: SecretKeyRef, client: Any, ttl: int
) -> Token:
    action = f"creating a child token with the token of Secret {ref.name}/{ref.key}"
    body = await conn.call(
        action,
        client.auth.token.create,
        ttl=f"{ttl}s",
        renewable=True,
        meta=_token_metadata(request),
        display_name=f"agentcred-{request.identity.task}",
        hint=CREATE_CHILD_HINT,
    )
    return token_from(body, action)


def _token_metadata(request: IssueRequest) -> dict[str, str]:
    identity = request.identity
    return {
        "task": identity.task,
        "task_uid": identity.task_uid,
        "namespace": identity.namespace,
        "credential": request.credential,
    }
