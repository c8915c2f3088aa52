"""Static credentials: one read of a KV v2 secret (a version, or the latest).

A KV read keeps no token: the login token is revoked right after the read (by the
backend's ``issue_with``), so the value is re-read every ``refreshInterval`` instead of
renewed.
"""

from __future__ import annotations

from typing import Any

from agentcred.backends.base import BackendInvalidConfig, Issued
from agentcred.backends.pooled import unrenewable
from agentcred.backends.vault.answers import body, fields, now
from agentcred.backends.vault.connection import Connection
from agentcred.models.resolved import VaultSpec


async def read_kv(conn: Connection, vault: VaultSpec, client: Any) -> Issued:
    kv = vault.kv
    assert kv is not None
    issued_at = now()
    which = f"version {kv.version}" if kv.version else "latest version"
    action = f"reading KV v2 {kv.mount}/{kv.path} ({which})"
    answer = body(
        await conn.call(
            action,
            client.secrets.kv.v2.read_secret_version,
            path=kv.path,
            version=kv.version or None,
            mount_point=kv.mount,
            raise_on_deleted_version=True,
        ),
        action,
    )
    try:
        data, version = answer["data"]["data"], int(answer["data"]["metadata"]["version"])
    except (KeyError, TypeError, ValueError):
        raise BackendInvalidConfig(f"Vault's answer to {action} has no data or version") from None
    return unrenewable(fields(data, action), f"kv:{kv.mount}/{kv.path}#{version}", issued_at)
