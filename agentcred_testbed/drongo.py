"""GCP Secret Manager for the tests: drongo's standalone server.

Why this exists: the ``gcpSecretManager`` backend must be tested against a Secret
Manager that answers the real REST API over a socket. Google ships no Secret Manager
emulator; drongo (PyPI, pinned in pyproject.toml, "the moto for GCP") serves its
in-memory GCP backends on one port with ``drongo server``.

How a client reaches it (checked against google-cloud-secret-manager 2.32)::

    SecretManagerServiceClient(
        transport="rest",  # drongo serves REST only, no gRPC
        client_options=ClientOptions(api_endpoint=os.environ["GCP_SECRET_MANAGER_ENDPOINT"]),
        credentials=AnonymousCredentials(),
    )

An ``http://`` api_endpoint makes the REST transport talk plain HTTP. Known behaviour of
drongo 0.8.0: ``versions/latest`` resolves to the newest *enabled* version, and access
responses carry no ``data_crc32c`` (real Secret Manager sets it), so a checksum check
must run only when the field is present.
"""

from __future__ import annotations

from pathlib import Path

from agentcred_testbed import procs
from agentcred_testbed.procs import StateDir

NAME = "drongo"
NAMES: tuple[str, ...] = (NAME,)

# drongo accepts any project id; the tests use this one.
PROJECT = "agentcred-test"

STARTUP_TIMEOUT = 60.0


def executable() -> Path:
    """``drongo`` from the same virtualenv as the running Python, never from PATH."""
    return procs.venv_tool("drongo", "drongo")


def command(port: int) -> list[str]:
    return [str(executable()), "server", "--host", "127.0.0.1", "--port", str(port)]


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    """Start drongo on 127.0.0.1 on a free port; return the endpoint and project to use."""
    # drongo's management API, like moto's /moto-api/.
    endpoint = procs.serve_local(
        state, NAME, env, command, "/drongo/health", timeout=STARTUP_TIMEOUT
    )
    return {"GCP_SECRET_MANAGER_ENDPOINT": endpoint, "GCP_PROJECT": PROJECT}


def down(state: StateDir) -> None:
    procs.stop(state, NAME)
