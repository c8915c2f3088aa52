"""The per-credential Vault token: what a login answers, and how it is revoked.

Revoking the token (``auth/token/revoke-self``, allowed by Vault's ``default`` policy)
revokes every lease it parents. Revocation is idempotent: Vault answers 403 "permission
denied" for a token that has expired or was revoked, and that counts as success.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from agentcred.backends.base import BackendDenied, BackendError, BackendInvalidConfig
from agentcred.backends.vault.answers import as_int, body
from agentcred.backends.vault.connection import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Token:
    token: str = field(repr=False)
    accessor: str
    ttl: int  # seconds; 0: no expiry
    renewable: bool
    batch: bool


def token_from(response: Any, action: str) -> Token:
    """The token in the ``auth`` block of a login (or renew-self) answer."""
    try:
        auth = body(response, action)["auth"]
        return Token(
            token=str(auth["client_token"]),
            accessor=str(auth.get("accessor") or ""),
            ttl=as_int(auth.get("lease_duration")),
            renewable=bool(auth.get("renewable")),
            batch=auth.get("token_type") == "batch",
        )
    except (KeyError, TypeError, AttributeError):
        raise BackendInvalidConfig(f"Vault's answer to {action} holds no token") from None


async def revoke_token(conn: Connection, client: Any) -> None:
    action = "revoking the credential's token (auth/token/revoke-self)"
    try:
        await conn.call(action, client.auth.token.revoke_self)
    except BackendDenied:
        return  # 403: the token has expired or was revoked already, and its leases too


async def revoke_quietly(conn: Connection, client: Any, accessor: str) -> None:
    """Best effort: whatever is left is ended by the token's TTL or a later revoke."""
    try:
        await revoke_token(conn, client)
    except BackendError as exc:
        log.warning("could not revoke Vault token %s now: %s", accessor, exc)
