"""Admin-side OpenBao setup for tests: policies and auth roles bound to a test's agent."""

from __future__ import annotations

import uuid

import hvac

DB_POLICY = """
path "database/creds/readonly" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["read"] }
"""


def admin(env: dict[str, str]) -> hvac.Client:
    return hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"])


def policy(env: dict[str, str], name: str, rules: str = DB_POLICY) -> str:
    admin(env).sys.create_or_update_policy(name=name, policy=rules)
    return name


def kubernetes_role(
    env: dict[str, str],
    namespace: str,
    service_account: str,
    *,
    role: str | None = None,
    token_ttl: str = "10m",
    token_max_ttl: str = "1h",
    rules: str = DB_POLICY,
) -> str:
    role = role or f"{namespace}-{service_account}"
    admin(env).write(
        f"auth/kubernetes/role/{role}",
        bound_service_account_names=service_account,
        bound_service_account_namespaces=namespace,
        audience="vault",
        token_policies=policy(env, role, rules),
        token_ttl=token_ttl,
        token_max_ttl=token_max_ttl,
    )
    return role


def approle(env: dict[str, str], name: str, rules: str = DB_POLICY) -> tuple[str, str]:
    client = admin(env)
    client.write(
        f"auth/approle/role/{name}",
        token_policies=policy(env, name, rules),
        token_ttl="10m",
        token_max_ttl="1h",
    )
    role_id = client.read(f"auth/approle/role/{name}/role-id")["data"]["role_id"]
    secret_id = client.write(f"auth/approle/role/{name}/secret-id")["data"]["secret_id"]
    return role_id, secret_id


def db_role(
    env: dict[str, str],
    *,
    default_ttl: str,
    max_ttl: str,
    name: str = "",
    connection: str = "testbed-postgres",
) -> str:
    """A database role with its own TTLs (the shared `readonly` one has 1h/24h)."""
    name = name or f"ro-{uuid.uuid4().hex[:8]}"
    admin(env).write(
        f"database/roles/{name}",
        db_name=connection,
        default_ttl=default_ttl,
        max_ttl=max_ttl,
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';",
            'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
        ],
        revocation_statements=[
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
            'REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{name}}";',
            'DROP ROLE IF EXISTS "{{name}}";',
        ],
    )
    allowed = admin(env).read(f"database/config/{connection}")["data"]["allowed_roles"]
    if "*" not in allowed:
        admin(env).write(
            f"database/config/{connection}",
            allowed_roles=[*allowed, name],
            plugin_name="postgresql-database-plugin",
            verify_connection=False,
        )
    return name


def leases(env: dict[str, str], prefix: str) -> list[str]:
    try:
        listed = admin(env).list(f"sys/leases/lookup/{prefix}")
    except hvac.exceptions.InvalidPath:
        return []
    return list((listed or {}).get("data", {}).get("keys", []))
