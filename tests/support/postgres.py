"""Does a credential really log in to the testbed PostgreSQL, and does its role exist?"""

from __future__ import annotations

from typing import Any

import psycopg

from support.kube import wait_for


def connect(
    env: dict[str, str], user: str, password: str, **options: Any
) -> psycopg.Connection[Any]:
    """A connection to the testbed database as ``user`` (5 s to connect)."""
    return psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        dbname=env["PGDATABASE"],
        user=user,
        password=password,
        connect_timeout=5,
        **options,
    )


def superuser(env: dict[str, str], **options: Any) -> psycopg.Connection[Any]:
    return connect(env, env["PGUSER"], env["PGPASSWORD"], **options)


def can_login(env: dict[str, str], username: str, password: str) -> bool:
    try:
        with connect(env, username, password) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def wait_refused(
    env: dict[str, str], data: dict[str, str], timeout: float = 30, what: str = "login refused"
) -> None:
    """Wait until the credential ``data`` (``username``, ``password``) no longer logs in."""
    wait_for(lambda: not can_login(env, data["username"], data["password"]), timeout, what)


def role_exists(env: dict[str, str], role: str) -> bool:
    with superuser(env) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            is not None
        )


def can_login_url(url: str) -> bool:
    """Log in with a libpq connection URL exactly as an application would."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False
