"""AWS Secrets Manager, STS and IAM for the tests: moto's standalone server.

Why this exists: the ``awsSecretsManager`` and ``awsSts`` backends must be tested against
an AWS API that really answers over HTTP, not a mock patched into the process (the
operator runs in its own process in the e2e suite, and a patched botocore would test
nothing of the wire format). ``moto_server`` (PyPI ``moto[server]``, pinned in
pyproject.toml) serves every moto backend on one port; boto3 reaches it through the
standard ``AWS_ENDPOINT_URL`` variable, so production code needs no test-only switch.

Known behaviour of moto 5.2.5 that the tests rely on or work around (see docs/TESTBED.md):
read with an explicit ``VersionStage``; STS credentials carry ``Expiration`` but moto
never enforces it; any access key is accepted unless ``INITIAL_NO_AUTH_ACTION_COUNT``
is set in the server's environment.
"""

from __future__ import annotations

from pathlib import Path

from agentcred_testbed import procs
from agentcred_testbed.procs import StateDir

NAME = "moto"
NAMES: tuple[str, ...] = (NAME,)

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"

# moto_server is pure Python: it listens within a second or two, slower on a busy CI box.
STARTUP_TIMEOUT = 60.0


def executable() -> Path:
    """``moto_server`` from the same virtualenv as the running Python, never from PATH."""
    return procs.venv_tool("moto_server", "moto[server]")


def command(port: int) -> list[str]:
    return [str(executable()), "-H", "127.0.0.1", "-p", str(port)]


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    """Start moto on 127.0.0.1 on a free port; return the AWS SDK variables to export."""
    # /moto-api/ is moto's own dashboard: it answers once the server routes requests.
    endpoint = procs.serve_local(state, NAME, env, command, "/moto-api/", timeout=STARTUP_TIMEOUT)
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def down(state: StateDir) -> None:
    procs.stop(state, NAME)
