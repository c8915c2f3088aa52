"""Smoke tests of the testbed's OpenBao and PostgreSQL: the Vault backend relies on them.

They check the behaviour the operator is built on, against the real servers: KV v2
round trips, and dynamic database credentials that log in while their lease lives and
stop working (and disappear from OpenBao's lease list) once it is revoked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import psycopg
import pytest
from hvac.exceptions import InvalidPath

from support import postgres

pytestmark = pytest.mark.e2e


@pytest.fixture
def vault(testbed_env: dict[str, str]) -> Iterator[Any]:
    client = hvac.Client(url=testbed_env["VAULT_ADDR"], token=testbed_env["VAULT_TOKEN"])
    assert client.is_authenticated()
    yield client
    client.adapter.close()


def _connect(env: dict[str, str], user: str, password: str) -> psycopg.Connection[Any]:
    return postgres.connect(env, user, password, autocommit=True)


def _superuser(env: dict[str, str]) -> psycopg.Connection[Any]:
    return postgres.superuser(env, autocommit=True)


def _issue(vault: Any, env: dict[str, str]) -> dict[str, Any]:
    response: dict[str, Any] = vault.secrets.database.generate_credentials(
        name=env["VAULT_DB_ROLE"], mount_point=env["VAULT_DB_MOUNT"]
    )
    return response


def _listed_leases(vault: Any, env: dict[str, str]) -> list[str]:
    prefix = f"{env['VAULT_DB_MOUNT']}/creds/{env['VAULT_DB_ROLE']}/"
    try:
        keys: list[str] = vault.sys.list_leases(prefix=prefix)["data"]["keys"]
    except InvalidPath:  # 404: no lease under the prefix at all
        return []
    return [prefix + key for key in keys]


def test_kv_v2_secret_reads_back_what_was_written(vault: Any) -> None:
    value = {"api_key": f"sk-{uuid.uuid4().hex}", "model": "smoke"}

    written = vault.secrets.kv.v2.create_or_update_secret(
        path="agents/smoke", secret=value, mount_point="secret"
    )
    read = vault.secrets.kv.v2.read_secret_version(
        path="agents/smoke", mount_point="secret", raise_on_deleted_version=True
    )

    assert read["data"]["data"] == value
    assert read["data"]["metadata"]["version"] == written["data"]["version"]


def test_dynamic_database_credentials_work_until_their_lease_is_revoked(
    vault: Any, testbed_env: dict[str, str]
) -> None:
    env = testbed_env
    with _superuser(env) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS smoke_items (id int)")
        admin.execute("INSERT INTO smoke_items VALUES (42)")

    creds = _issue(vault, env)
    username, password = creds["data"]["username"], creds["data"]["password"]
    assert creds["lease_id"].startswith(f"{env['VAULT_DB_MOUNT']}/creds/{env['VAULT_DB_ROLE']}/")
    assert creds["lease_duration"] > 0
    assert creds["renewable"] is True

    session = _connect(env, username, password)
    assert session.execute("SELECT 1").fetchone() == (1,)
    assert session.execute("SELECT current_user").fetchone() == (username,)
    assert (42,) in session.execute("SELECT id FROM smoke_items").fetchall()

    vault.sys.revoke_lease(lease_id=creds["lease_id"])

    with pytest.raises(psycopg.OperationalError):  # the open session was terminated
        session.execute("SELECT 1")
    session.close()
    with pytest.raises(psycopg.OperationalError):  # and the login is refused
        _connect(env, username, password).close()
    with _superuser(env) as admin:
        left = admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (username,))
        assert left.fetchone() == (0,)


def test_database_lease_is_listed_until_revoked(vault: Any, testbed_env: dict[str, str]) -> None:
    lease_id = _issue(vault, testbed_env)["lease_id"]

    assert lease_id in _listed_leases(vault, testbed_env)
    assert vault.sys.read_lease(lease_id=lease_id)["data"]["id"] == lease_id

    vault.sys.revoke_lease(lease_id=lease_id)

    assert lease_id not in _listed_leases(vault, testbed_env)
