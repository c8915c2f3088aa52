"""The credentials e2e tests use again and again, each built one way.

``vault_database`` is the Vault database dynamic credential most lifecycle tests issue: a
ServiceAccount for the agent, a kubernetes-auth role bound to it, and an AgentCredential
for ``database/creds/readonly`` (or a role with its own TTLs from ``own_db_role``) on the
namespace's testbed Vault backend. ``kv_secret`` writes a KV v2 value as the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from support import vault
from support.scenario import Scenario

READONLY = "database/creds/readonly"  # the testbed's shared role: 1h leases, 24h max
DYNAMIC = {"path": READONLY}


@dataclass(frozen=True)
class DbRole:
    """A database role of a test's own: its creds path and a policy that reads only it."""

    path: str
    rules: str


def own_db_role(
    env: dict[str, str],
    *,
    default_ttl: str,
    max_ttl: str,
    name: str = "",
    connection: str = "testbed-postgres",
) -> DbRole:
    """A fresh database role granting leases of ``default_ttl``, capped at ``max_ttl``."""
    name = vault.db_role(
        env, default_ttl=default_ttl, max_ttl=max_ttl, name=name, connection=connection
    )
    path = f"database/creds/{name}"
    return DbRole(path, f'path "{path}" {{ capabilities = ["read"] }}')


def vault_database(
    scene: Scenario,
    env: dict[str, str],
    name: str = "db",
    *,
    account: str = "agent",
    db_role: DbRole | None = None,
    **spec: Any,
) -> str:
    """ServiceAccount ``account``, a kubernetes-auth role bound to it and the AgentCredential
    ``name`` for a database credential (``db_role``'s, else ``readonly``), with ``spec``'s
    other fields (ttl, template...). Returns the account, for the task's
    ``serviceAccountName``."""
    scene.service_account(account)
    path, rules = (db_role.path, db_role.rules) if db_role else (READONLY, vault.DB_POLICY)
    role = vault.kubernetes_role(env, scene.ns, account, rules=rules)
    scene.credential(name, vault={"role": role, "dynamic": {"path": path}}, **spec)
    return account


def kv_rules(path: str) -> str:
    """A policy that reads exactly the KV v2 secret ``path`` (mount ``secret/``)."""
    return f'path "secret/data/{path}" {{ capabilities = ["read"] }}'


def vault_kv(
    scene: Scenario,
    env: dict[str, str],
    name: str,
    path: str,
    value: dict[str, str],
    *,
    account: str = "agent",
    **spec: Any,
) -> str:
    """``value`` written at the KV v2 ``path``, ServiceAccount ``account``, a kubernetes-auth
    role bound to it that reads only ``path``, and the AgentCredential ``name`` for it.
    Returns the account."""
    vault.admin(env).secrets.kv.v2.create_or_update_secret(path=path, secret=value)
    scene.service_account(account)
    role = vault.kubernetes_role(env, scene.ns, account, rules=kv_rules(path))
    scene.credential(name, vault={"role": role, "kv": {"path": path}}, **spec)
    return account
