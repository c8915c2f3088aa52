"""examples/chat-sessions/ on the testbed node: its objects as the testbed needs them.

The example's files name what a real cluster has (a registry image, PostgreSQL on
``127.0.0.1:5432``, the CredentialBackend ``vault-main``); the testbed's servers listen
on free ports that pods reach through the node's address, and the image is built here
and imported into the node. ``documents`` makes exactly those substitutions, for
``make dev NODE=1 EXAMPLE=chat-sessions`` (namespace ``chat``) and for its e2e test
(the test's own namespace, backend and Vault role), so both run the same objects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "examples" / "chat-sessions"
MANIFEST = FOLDER / "chat-sessions.yaml"
SEED = FOLDER / "seed.sql"
NAME = "chat-sessions"  # the Deployment, the image (images.EXTRA), its pods' label
NAMESPACE = "chat"
SERVICE_ACCOUNT = "chat-agent"
CREDENTIAL = "chat-db"
VAULT_ROLE = "chat-agent"
IMAGE = "localhost/agentcred/chat-sessions:testbed"  # node.EXTRA_IMAGES
POD_LABELS = "app.kubernetes.io/name=chat-sessions"
PORT = 8080
EXAMPLE_DATABASE = "127.0.0.1:5432/app"  # what the example's DATABASE_URL names


def point_database(doc: dict[str, Any], where: str) -> None:
    """An AgentCredential's template values that name the example's database
    (``127.0.0.1:5432/app``) name ``where`` (``host:port/database``) instead."""
    if doc.get("kind") != "AgentCredential":
        return
    template = doc.get("spec", {}).get("template") or {}
    for key, value in template.items():
        if isinstance(value, str):
            template[key] = value.replace(f"@{EXAMPLE_DATABASE}", f"@{where}")


def documents(
    *,
    database: str,
    namespace: str = NAMESPACE,
    backend: str = "vault-main",
    vault_role: str = VAULT_ROLE,
    otlp_endpoint: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """The example's objects for the testbed: in ``namespace`` (its Namespace object only
    when it is the example's own), credentials from ``backend`` and ``vault_role``, the
    database at ``database`` (``host:port/db``), the node's image, traces to
    ``otlp_endpoint`` when given (``extra_env``, ``tolerations``: for the tests)."""
    out = []
    for original in yaml.safe_load_all(MANIFEST.read_text()):
        if not original:
            continue
        doc = copy.deepcopy(original)
        kind, meta = doc["kind"], doc["metadata"]
        if kind == "Namespace":
            if namespace != NAMESPACE:
                continue  # the caller's namespace exists (and has its own labels)
        else:
            meta["namespace"] = namespace
        if kind == "AgentCredential":
            doc["spec"]["backendRef"]["name"] = backend
            doc["spec"]["vault"]["role"] = vault_role
            point_database(doc, database)
        if kind == "RoleBinding":
            for subject in doc["subjects"]:
                subject["namespace"] = namespace
        if kind == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["image"] = IMAGE
            container["imagePullPolicy"] = "Never"  # imported into the node, never pulled
            env = container.setdefault("env", [])
            if otlp_endpoint:
                env.append({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": otlp_endpoint})
            env.extend({"name": k, "value": v} for k, v in (extra_env or {}).items())
            if tolerations:
                doc["spec"]["template"]["spec"]["tolerations"] = tolerations
        out.append(doc)
    return out


def seed(env: Mapping[str, str]) -> None:
    """The example's table and rows (seed.sql, idempotent), as the database's owner.
    Before any session: Vault's ``readonly`` users get SELECT on the tables that exist
    when they are created."""
    with psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        dbname=env["PGDATABASE"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        connect_timeout=5,
        autocommit=True,
    ) as conn:
        conn.execute(SEED.read_text())
