"""Does a credential really log in to the testbed PostgreSQL, and does its role exist?"""

from __future__ import annotations

import psycopg


def can_login(env: dict[str, str], username: str, password: str) -> bool:
    try:
        with psycopg.connect(
            host=env["PGHOST"],
            port=env["PGPORT"],
            dbname=env["PGDATABASE"],
            user=username,
            password=password,
            connect_timeout=5,
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def role_exists(env: dict[str, str], role: str) -> bool:
    with psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        dbname=env["PGDATABASE"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
    ) as conn:
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
