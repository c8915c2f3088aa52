"""The GCP Secret Manager backend against the testbed's drongo (REST, plain HTTP).

Each test creates its own secret in the testbed's project through an admin client,
then reads it through the backend with ``spec.endpoint`` set to drongo's
``http://`` URL and ``transport: rest``. That endpoint is what makes the backend use
anonymous credentials (its rule for plaintext endpoints), so no Google credentials
are needed here, and none are looked up.

What drongo 0.8.0 does that real Secret Manager may not:

* ``versions/latest`` resolves to the newest *enabled* version. Google documents
  ``latest`` as the most recently created version; there, disabling the newest
  version makes ``latest`` fail (FAILED_PRECONDITION, ``BackendInvalidConfig``) instead of
  falling back. Either way a disabled version is never served.
* a disabled or destroyed version answers HTTP 400 (``BadRequest``; Google answers
  FAILED_PRECONDITION, also a 400 over REST): both are ``BackendInvalidConfig``.
* any project id exists, so a wrong project is ``BackendNotFound`` ("Secret [...] not
  found"); real Secret Manager answers PERMISSION_DENIED (``BackendDenied``) for a project
  that does not exist or that the identity cannot see.
* access responses carry no ``data_crc32c``, so the checksum path is not exercised
  here (tests/unit/test_gcp_errors.py covers it).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from agentcred.backends.base import (
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Identity,
    Issued,
    IssueRequest,
)
from agentcred.backends.gcp_secret_manager import GcpSecretManagerBackend
from agentcred.backends.registry import BackendRegistry
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from support.leaks import exception_texts

pytestmark = pytest.mark.e2e

TTL = datetime.timedelta(minutes=5)


class Drongo:
    """The testbed's Secret Manager, seen by an admin client and by credential specs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.endpoint = env["GCP_SECRET_MANAGER_ENDPOINT"]
        self.project = env["GCP_PROJECT"]
        self.admin = secretmanager.SecretManagerServiceClient(
            transport="rest",
            client_options=ClientOptions(api_endpoint=self.endpoint),
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        )

    def secret(self, *payloads: bytes) -> str:
        """A new secret with ``payloads`` as versions 1, 2, ...; returns its id."""
        secret_id = f"llm-key-{uuid.uuid4().hex[:10]}"
        created = self.admin.create_secret(
            request={
                "parent": f"projects/{self.project}",
                "secret_id": secret_id,
                "secret": {"replication": {"automatic": {}}},
            }
        )
        for payload in payloads:
            self.add(secret_id, payload)
        assert created.name.endswith(secret_id)
        return secret_id

    def add(self, secret_id: str, payload: bytes) -> str:
        version = self.admin.add_secret_version(
            request={"parent": self.name(secret_id), "payload": {"data": payload}}
        )
        return str(version.name)

    def name(self, secret_id: str, version: str | None = None) -> str:
        name = f"projects/{self.project}/secrets/{secret_id}"
        return f"{name}/versions/{version}" if version else name

    def spec(self, secret_id: str, **block: Any) -> ResolvedCredential:
        gcp = {
            "project": self.project,
            "secret": secret_id,
            "transport": "rest",
            "endpoint": self.endpoint,
            **block,
        }
        return parse_resolved({"gcpSecretManager": gcp})


@pytest.fixture(scope="module")
def drongo(testbed_env: dict[str, str]) -> Iterator[Drongo]:
    server = Drongo(testbed_env)
    yield server
    server.admin.transport.close()


@pytest.fixture
def backend() -> Iterator[GcpSecretManagerBackend]:
    gcp = GcpSecretManagerBackend(concurrency=4, timeout=10)
    yield gcp
    asyncio.run(gcp.aclose())


def request(spec: ResolvedCredential) -> IssueRequest:
    async def token_for(audience: str) -> str:
        raise AssertionError("the GCP backend reads with the operator's identity, not a token")

    async def secret_value(name: str, key: str) -> str:
        raise AssertionError("the GCP backend reads no Kubernetes Secret")

    identity = Identity(
        namespace="team-a",
        service_account="agent",
        task="claim-4711",
        task_uid=str(uuid.uuid4()),
        token_for=token_for,
        secret_value=secret_value,
    )
    return IssueRequest("llm", spec, identity, TTL, f"test-{uuid.uuid4().hex[:8]}")


def issue(backend: Any, spec: ResolvedCredential) -> Issued:
    issued: Issued = asyncio.run(backend.issue(request(spec)))
    return issued


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- values and versions --------------------------------------------------------------------


def test_a_json_secret_becomes_one_key_per_field(
    drongo: Drongo, backend: GcpSecretManagerBackend
) -> None:
    body = {"username": "agent", "password": "s3cret-pw", "port": 5432, "tls": True}
    secret_id = drongo.secret(json.dumps(body).encode())

    issued = issue(backend, drongo.spec(secret_id))

    assert dict(issued.data) == {
        "username": "agent",
        "password": "s3cret-pw",
        "port": "5432",
        "tls": "true",
    }
    assert issued.lease_id == drongo.name(secret_id, "1")
    assert issued.expires_at is None
    assert not issued.renewable
    assert issued.session is None
    assert datetime.datetime.now(datetime.UTC) - issued.issued_at < datetime.timedelta(minutes=1)


def test_a_plain_secret_is_one_value_key_and_bytes_are_base64(
    drongo: Drongo, backend: GcpSecretManagerBackend
) -> None:
    binary = b"\x00\xff\xfe-not-utf8"
    secret_id = drongo.secret(b"sk-plain-api-key", binary)

    plain = issue(backend, drongo.spec(secret_id, version="1"))
    raw = issue(backend, drongo.spec(secret_id, version="2"))

    assert dict(plain.data) == {"value": "sk-plain-api-key"}
    assert dict(raw.data) == {"value": base64.b64encode(binary).decode()}


def test_latest_and_a_pinned_version(drongo: Drongo, backend: GcpSecretManagerBackend) -> None:
    secret_id = drongo.secret(b"one", b"two")

    latest = issue(backend, drongo.spec(secret_id))
    pinned = issue(backend, drongo.spec(secret_id, version="1"))

    assert (latest.data["value"], latest.lease_id) == ("two", drongo.name(secret_id, "2"))
    assert (pinned.data["value"], pinned.lease_id) == ("one", drongo.name(secret_id, "1"))


def test_a_new_version_reaches_the_next_latest_read(
    drongo: Drongo, backend: GcpSecretManagerBackend
) -> None:
    secret_id = drongo.secret(b'{"api_key": "before"}')
    spec = drongo.spec(secret_id)
    before = issue(backend, spec)

    rotated = drongo.add(secret_id, b'{"api_key": "after"}')
    after = issue(backend, spec)

    assert before.data == {"api_key": "before"}
    assert after.data == {"api_key": "after"}
    assert after.lease_id == rotated != before.lease_id


def test_a_disabled_or_destroyed_version_is_never_served(
    drongo: Drongo, backend: GcpSecretManagerBackend
) -> None:
    secret_id = drongo.secret(b"good", b"withdrawn", b"destroyed")
    drongo.admin.disable_secret_version(request={"name": drongo.name(secret_id, "2")})
    drongo.admin.destroy_secret_version(request={"name": drongo.name(secret_id, "3")})

    for version, state in (("2", "DISABLED"), ("3", "DESTROYED")):
        with pytest.raises(
            BackendInvalidConfig, match=f"versions/{version}.*state {state}"
        ) as caught:
            issue(backend, drongo.spec(secret_id, version=version))
        assert "withdrawn" not in str(caught.value)

    # drongo's `latest` is the newest enabled version (Google's would refuse, see above).
    latest = issue(backend, drongo.spec(secret_id))
    assert (latest.data["value"], latest.lease_id) == ("good", drongo.name(secret_id, "1"))

    drongo.admin.disable_secret_version(request={"name": drongo.name(secret_id, "1")})
    with pytest.raises(BackendNotFound, match="versions/latest"):
        issue(backend, drongo.spec(secret_id))


# -- failures -------------------------------------------------------------------------------


def test_what_does_not_exist_is_not_found(drongo: Drongo, backend: GcpSecretManagerBackend) -> None:
    secret_id = drongo.secret(b"one")
    cases = [
        drongo.spec(f"missing-{uuid.uuid4().hex[:8]}"),
        drongo.spec(secret_id, version="7"),
        # drongo: every project exists, so only the secret is missing (Google: Denied).
        drongo.spec(secret_id, project=f"other-{uuid.uuid4().hex[:8]}"),
    ]
    for spec in cases:
        with pytest.raises(
            BackendNotFound, match=r"GCP Secret Manager found nothing for accessing"
        ):
            issue(backend, spec)
    with pytest.raises(BackendNotFound, match="not found"):
        asyncio.run(backend.check(cases[0]))


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_an_endpoint_that_is_down_is_unavailable(
    drongo: Drongo, backend: GcpSecretManagerBackend, transport: str
) -> None:
    spec = drongo.spec("any", transport=transport, endpoint=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(BackendUnavailable, match="accessing projects/") as caught:
        issue(backend, spec)
    with pytest.raises(BackendUnavailable, match="reading secret projects/"):
        asyncio.run(backend.check(spec))

    assert caught.value.__cause__ is not None


def test_check_passes_for_an_existing_secret(
    drongo: Drongo, backend: GcpSecretManagerBackend
) -> None:
    asyncio.run(backend.check(drongo.spec(drongo.secret(b"one"))))


def test_the_registry_serves_it_and_counts_the_calls(drongo: Drongo) -> None:
    secret_id = drongo.secret(b'{"token": "t"}')
    registry = BackendRegistry(BackendSettings(concurrency=2))
    spec = drongo.spec(secret_id)

    backend = registry.for_spec(spec)

    assert backend is registry.for_kind("gcpSecretManager")
    assert backend.capabilities(spec).static
    backend.validate(spec)
    assert issue(backend, spec).data == {"token": "t"}


def test_no_value_in_any_repr_message_or_log(
    drongo: Drongo, backend: GcpSecretManagerBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    value = f"sk-live-{uuid.uuid4().hex}"
    secret_id = drongo.secret(value.encode(), json.dumps({"api_key": value}).encode())
    drongo.admin.disable_secret_version(request={"name": drongo.name(secret_id, "1")})

    issued = issue(backend, drongo.spec(secret_id))
    assert issued.data == {"api_key": value}
    errors: list[BackendError] = []
    for spec in (
        drongo.spec(secret_id, version="1"),  # disabled: refused
        drongo.spec(secret_id, endpoint=f"http://127.0.0.1:{closed_port()}"),
    ):
        try:
            issue(backend, spec)
        except BackendError as exc:
            errors.append(exc)

    assert [type(e) for e in errors] == [BackendInvalidConfig, BackendUnavailable]
    texts = [str(issued), repr(issued), caplog.text, *exception_texts(errors)]
    encoded = base64.b64encode(value.encode()).decode()
    for text in texts:
        assert value not in text
        assert encoded not in text
