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

import sys
from pathlib import Path

from agentcred_testbed.procs import (
    StateDir,
    TestbedError,
    http_ok,
    port_for,
    start,
    stop,
    wait_until,
)

NAME = "drongo"
NAMES: tuple[str, ...] = (NAME,)

# drongo accepts any project id; the tests use this one.
PROJECT = "agentcred-test"

STARTUP_TIMEOUT = 60.0


def executable() -> Path:
    """``drongo`` from the same virtualenv as the running Python, never from PATH."""
    path = Path(sys.executable).parent / "drongo"
    if not path.is_file():
        raise TestbedError(f"{path} not found: install the dev extra (drongo) in this venv")
    return path


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    """Start drongo on 127.0.0.1 on a free port; return the endpoint and project to use."""
    stop(state, NAME)  # never orphan a server an earlier `up` left recorded
    port = port_for(env)
    endpoint = f"http://127.0.0.1:{port}"
    start(state, NAME, [str(executable()), "server", "--host", "127.0.0.1", "--port", str(port)])
    # drongo's management API, like moto's /moto-api/.
    wait_until(
        state,
        NAME,
        lambda: http_ok(f"{endpoint}/drongo/health"),
        timeout=STARTUP_TIMEOUT,
        what=f"serving on {endpoint}",
    )
    return {
        "GCP_SECRET_MANAGER_ENDPOINT": endpoint,
        "GCP_PROJECT": PROJECT,
    }


def down(state: StateDir) -> None:
    for name in NAMES:
        stop(state, name)
