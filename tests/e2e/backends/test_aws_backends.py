"""The AWS backends against moto's server and the testbed's real kube-apiserver.

Most tests use the testbed's shared moto, found the standard way (``AWS_ENDPOINT_URL``
and the ``testing`` keys the testbed exports), so the backends' production code path
for endpoint and credential resolution is the one under test. What the shared server
cannot show runs against a private, short-lived ``moto_server`` of the test's own:

* what STS received (session tags, the unsigned web identity call): moto does not keep
  session tags in its state, so the private server records every request
  (``/moto-api/recorder``) and the test reads the recording;
* refusals: moto checks credentials only once enabled (``INITIAL_NO_AUTH_ACTION_COUNT``,
  or at runtime ``POST /moto-api/reset-auth``), which would break every other test
  sharing the server.

Each test gets a fresh namespace with a ServiceAccount ``agent``, whose TokenRequest
tokens are the agent's identity for AssumeRoleWithWebIdentity.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import socket
import traceback
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes import client

from agentcred.backends.aws_secrets_manager import AwsSecretsManagerBackend
from agentcred.backends.aws_sts import AwsStsBackend, session_name
from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Identity,
    Issued,
    IssueRequest,
    Lease,
)
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from agentcred_testbed import moto
from agentcred_testbed.procs import StateDir, free_port, serve, stop

pytestmark = pytest.mark.e2e

SA = "agent"
TASK = "claim-4711"
TTL = datetime.timedelta(minutes=20)
ACCOUNT = "123456789012"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
)


@dataclass
class Agent:
    """One test's world: its namespace, the testbed's settings and API clients."""

    namespace: str
    env: dict[str, str]
    kube: client.ApiClient
    tokens: list[str] = field(default_factory=list)  # every token handed to a backend

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.kube)

    def aws(self, service: str, endpoint: str | None = None, **keys: str) -> Any:
        """An admin client of the shared moto (or of ``endpoint``)."""
        return boto3.session.Session().client(
            service,
            endpoint_url=endpoint or self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=keys.get("key_id", self.env["AWS_ACCESS_KEY_ID"]),
            aws_secret_access_key=keys.get("secret", self.env["AWS_SECRET_ACCESS_KEY"]),
            aws_session_token=keys.get("token"),
        )

    def identity(self) -> Identity:
        core, namespace, tokens = self.core, self.namespace, self.tokens

        async def token_for(audience: str) -> str:
            body = {"spec": {"audiences": [audience], "expirationSeconds": 600}}
            review = await asyncio.to_thread(
                core.create_namespaced_service_account_token, SA, namespace, body
            )
            token: str = review.status.token
            tokens.append(token)
            return token

        async def secret_value(name: str, key: str) -> str:
            raise AssertionError("the AWS backends read no Kubernetes Secret")

        return Identity(
            namespace=namespace,
            service_account=SA,
            task=TASK,
            task_uid=str(uuid.uuid4()),
            token_for=token_for,
            secret_value=secret_value,
        )

    def request(self, spec: ResolvedCredential, ttl: datetime.timedelta = TTL) -> IssueRequest:
        return IssueRequest(
            credential="llm",
            spec=spec,
            identity=self.identity(),
            ttl=ttl,
            correlation_id=f"test-{uuid.uuid4().hex[:8]}",
        )

    def secret_name(self, name: str = "llm") -> str:
        return f"{self.namespace}/{name}"

    def role(self, endpoint: str | None = None) -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ],
        }
        iam = self.aws("iam", endpoint)
        name = f"agent-{self.namespace}"[:64]
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
        return arn


@pytest.fixture
def agent(kube: client.ApiClient, namespace: str, testbed_env: dict[str, str]) -> Agent:
    client.CoreV1Api(kube).create_namespaced_service_account(namespace, {"metadata": {"name": SA}})
    return Agent(namespace=namespace, env=testbed_env, kube=kube)


@pytest.fixture
def sm() -> Iterator[AwsSecretsManagerBackend]:
    backend = AwsSecretsManagerBackend(concurrency=4, timeout=10)
    yield backend
    asyncio.run(backend.aclose())


@pytest.fixture
def sts() -> Iterator[AwsStsBackend]:
    backend = AwsStsBackend(concurrency=4, timeout=10)
    yield backend
    asyncio.run(backend.aclose())


def sm_spec(secret_id: str, **block: Any) -> ResolvedCredential:
    return parse_resolved({"awsSecretsManager": {"secretId": secret_id, **block}})


def sts_spec(role_arn: str, **block: Any) -> ResolvedCredential:
    return parse_resolved({"awsSts": {"roleArn": role_arn, **block}})


def expected_session(agent: Agent) -> str:
    """``agentcred.<namespace>.<task>``; the test namespaces are long, so it is cut and
    ends in a hash (unit tests check the exact rule)."""
    name = session_name(agent.namespace, TASK)
    assert name.startswith(f"agentcred.{agent.namespace[:40]}")
    assert len(name) <= 64
    return name


def seconds_left(when: datetime.datetime | None) -> float:
    assert when is not None
    return (when - datetime.datetime.now(datetime.UTC)).total_seconds()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def moto_state(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as answer:  # noqa: S310
        state: dict[str, Any] = json.loads(answer.read())
    return state


def assumed_role(endpoint: str, arn: str) -> dict[str, Any]:
    """moto's record of the STS session ``arn`` (its backend state, over HTTP)."""
    found = [r for r in moto_state(endpoint)["sts"]["AssumedRole"] if r["arn"] == arn]
    assert len(found) == 1, f"moto has no single record of {arn}"
    return found[0]


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


# -- a private moto server -------------------------------------------------------------------


@dataclass
class PrivateMoto:
    endpoint: str

    def post(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            f"{self.endpoint}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def recorded(self) -> list[dict[str, Any]]:
        """Every request moto received since recording started: method, headers, body."""
        url = f"{self.endpoint}/moto-api/recorder/download-recording"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310
            lines = answer.read().decode().splitlines()
        entries = []
        for line in lines:
            entry = json.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            entry["form"] = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            entries.append(entry)
        return entries


@contextmanager
def private_moto(root: Path) -> Iterator[PrivateMoto]:
    """A moto_server of this test's own on a free port, recording requests; always stopped."""
    state = StateDir(root / "state")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    name = f"moto-private-{port}"
    try:
        serve(
            state,
            name,
            moto.command(port),
            f"{endpoint}/moto-api/",
            timeout=moto.STARTUP_TIMEOUT,
            what=f"serving on {endpoint}",
            env={"MOTO_RECORDER_FILEPATH": str(root / "recording.jsonl")},
            cwd=root,
        )
        yield PrivateMoto(endpoint)
    finally:
        stop(state, name)


# -- Secrets Manager: values, versions, rotation ------------------------------------------


def test_a_json_secret_becomes_one_key_per_field(
    agent: Agent, sm: AwsSecretsManagerBackend
) -> None:
    name = agent.secret_name()
    value = {"api_key": f"sk-{uuid.uuid4().hex}", "n": 1, "on": True, "opts": {"x": [1]}}
    created = agent.aws("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))
    spec = sm_spec(name)
    assert sm.capabilities(spec).static

    before = datetime.datetime.now(datetime.UTC)
    issued = asyncio.run(sm.issue(agent.request(spec)))

    assert dict(issued.data) == {
        "api_key": value["api_key"],
        "n": "1",
        "on": "true",
        "opts": '{"x": [1]}',
    }
    assert issued.lease_id == f"{created['ARN']}#{created['VersionId']}"
    assert (issued.expires_at, issued.renewable, issued.session) == (None, False, None)
    assert before <= issued.issued_at <= datetime.datetime.now(datetime.UTC)
    asyncio.run(sm.check(spec))
    asyncio.run(sm.revoke(Lease(spec, issued.lease_id, None, "c")))  # nothing to do


def test_a_plain_string_is_one_key_named_value_or_the_spec_key(
    agent: Agent, sm: AwsSecretsManagerBackend
) -> None:
    aws = agent.aws("secretsmanager")
    plain, array = agent.secret_name("plain"), agent.secret_name("array")
    aws.create_secret(Name=plain, SecretString="hunter2 with spaces")
    aws.create_secret(Name=array, SecretString='["a", 1]')

    default = asyncio.run(sm.issue(agent.request(sm_spec(plain))))
    custom = asyncio.run(sm.issue(agent.request(sm_spec(plain, key="OPENAI_API_KEY"))))
    not_an_object = asyncio.run(sm.issue(agent.request(sm_spec(array))))

    assert dict(default.data) == {"value": "hunter2 with spaces"}
    assert dict(custom.data) == {"OPENAI_API_KEY": "hunter2 with spaces"}
    assert dict(not_an_object.data) == {"value": '["a", 1]'}


def test_a_binary_secret_is_utf8_text_or_base64(agent: Agent, sm: AwsSecretsManagerBackend) -> None:
    aws = agent.aws("secretsmanager")
    text, blob = agent.secret_name("text"), agent.secret_name("blob")
    aws.create_secret(Name=text, SecretBinary="pässword".encode())
    aws.create_secret(Name=blob, SecretBinary=b"\xff\x00\x10\x80")

    as_text = asyncio.run(sm.issue(agent.request(sm_spec(text, key="password"))))
    as_base64 = asyncio.run(sm.issue(agent.request(sm_spec(blob))))

    assert dict(as_text.data) == {"password": "pässword"}
    assert dict(as_base64.data) == {"value": base64.b64encode(b"\xff\x00\x10\x80").decode()}


def test_a_version_stage_or_a_version_id_picks_the_version(
    agent: Agent, sm: AwsSecretsManagerBackend
) -> None:
    aws = agent.aws("secretsmanager")
    name = agent.secret_name()
    first = aws.create_secret(Name=name, SecretString='{"k": "one"}')
    second = aws.put_secret_value(SecretId=name, SecretString='{"k": "two"}')
    third = aws.put_secret_value(
        SecretId=name, SecretString='{"k": "three"}', VersionStages=["STAGING"]
    )

    def read(**block: Any) -> Issued:
        return asyncio.run(sm.issue(agent.request(sm_spec(name, **block))))

    current, previous = read(), read(versionStage="AWSPREVIOUS")
    staging, pinned = read(versionStage="STAGING"), read(versionId=first["VersionId"])

    assert (current.data["k"], current.lease_id.split("#")[1]) == ("two", second["VersionId"])
    assert (previous.data["k"], previous.lease_id.split("#")[1]) == ("one", first["VersionId"])
    assert (staging.data["k"], staging.lease_id.split("#")[1]) == ("three", third["VersionId"])
    assert (pinned.data["k"], pinned.lease_id.split("#")[1]) == ("one", first["VersionId"])
    asyncio.run(sm.check(sm_spec(name, versionStage="STAGING")))
    with pytest.raises(BackendNotFound, match="no version labelled NOPE"):
        asyncio.run(sm.check(sm_spec(name, versionStage="NOPE")))
    with pytest.raises(BackendNotFound):
        read(versionStage="NOPE")
    with pytest.raises(BackendNotFound):
        read(versionId=uuid.uuid4().hex)


def test_a_rotated_secret_is_read_anew(agent: Agent, sm: AwsSecretsManagerBackend) -> None:
    aws = agent.aws("secretsmanager")
    name = agent.secret_name()
    aws.create_secret(Name=name, SecretString='{"api_key": "sk-before"}')
    spec = sm_spec(name)
    before = asyncio.run(sm.issue(agent.request(spec)))

    # Rotation as a rotation Lambda does it: a new version takes AWSCURRENT.
    aws.put_secret_value(SecretId=name, SecretString='{"api_key": "sk-after"}')
    after = asyncio.run(sm.issue(agent.request(spec)))

    assert before.data["api_key"] == "sk-before"
    assert after.data["api_key"] == "sk-after"
    assert after.lease_id != before.lease_id
    assert after.lease_id.split("#")[0] == before.lease_id.split("#")[0]  # same ARN


def test_a_missing_secret_is_not_found(agent: Agent, sm: AwsSecretsManagerBackend) -> None:
    spec = sm_spec(agent.secret_name("missing"))
    with pytest.raises(BackendNotFound, match="ResourceNotFoundException"):
        asyncio.run(sm.issue(agent.request(spec)))
    with pytest.raises(BackendNotFound):
        asyncio.run(sm.check(spec))


def test_a_malformed_json_object_is_invalid_config_without_its_content(
    agent: Agent, sm: AwsSecretsManagerBackend
) -> None:
    name = agent.secret_name()
    secret = f'{{"api_key": "sk-{uuid.uuid4().hex}", broken'
    agent.aws("secretsmanager").create_secret(Name=name, SecretString=secret)
    with pytest.raises(BackendInvalidConfig, match="not valid JSON") as caught:
        asyncio.run(sm.issue(agent.request(sm_spec(name))))
    assert "sk-" not in "".join(traceback.format_exception(caught.value))
    assert caught.value.__context__ is None


def test_an_unreachable_endpoint_is_unavailable(
    agent: Agent, sm: AwsSecretsManagerBackend, sts: AwsStsBackend
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    secret = sm_spec("agents/llm", endpoint=endpoint)
    role = sts_spec(f"arn:aws:iam::{ACCOUNT}:role/r", endpoint=endpoint)
    web = sts_spec(f"arn:aws:iam::{ACCOUNT}:role/r", endpoint=endpoint, webIdentity={})
    with pytest.raises(BackendUnavailable, match="cannot reach AWS"):
        asyncio.run(sm.issue(agent.request(secret)))
    with pytest.raises(BackendUnavailable, match="cannot reach AWS"):
        asyncio.run(sm.check(secret))
    for spec in (role, web):
        with pytest.raises(BackendUnavailable, match="cannot reach AWS"):
            asyncio.run(sts.issue(agent.request(spec)))
    with pytest.raises(BackendUnavailable, match="cannot reach AWS"):
        asyncio.run(sts.check(role))
    asyncio.run(sts.check(web))  # no call without a task's token: nothing to reach


# -- STS -----------------------------------------------------------------------------------


def test_assume_role_issues_named_credentials_that_work(agent: Agent, sts: AwsStsBackend) -> None:
    role = agent.role()
    spec = sts_spec(role)
    caps = sts.capabilities(spec)
    assert (caps.renewable, caps.revocable, caps.static) == (False, False, False)

    issued = asyncio.run(sts.issue(agent.request(spec)))

    session = expected_session(agent)
    role_name = role.rsplit("/", 1)[1]
    assert set(issued.data) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    }
    assert issued.lease_id == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session}"
    assert 1190 < seconds_left(issued.expires_at) <= 1200  # the TTL: 20 minutes
    assert issued.expires_at is not None
    assert issued.data["AWS_CREDENTIAL_EXPIRATION"] == issued.expires_at.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert not issued.renewable
    assert issued.session is None
    # The credentials work, as the session named after the task.
    as_agent = agent.aws(
        "sts",
        key_id=issued.data["AWS_ACCESS_KEY_ID"],
        secret=issued.data["AWS_SECRET_ACCESS_KEY"],
        token=issued.data["AWS_SESSION_TOKEN"],
    )
    assert as_agent.get_caller_identity()["Arn"] == issued.lease_id
    record = assumed_role(agent.env["AWS_ENDPOINT_URL"], issued.lease_id)
    assert record["session_name"] == session
    assert record["role_arn"] == role
    assert record["policy"] is None
    asyncio.run(sts.check(spec))  # the operator's credentials work
    asyncio.run(sts.revoke(Lease(spec, issued.lease_id, None, "c")))  # nothing to do


def test_the_duration_is_the_spec_or_the_ttl_raised_to_15_minutes(
    agent: Agent, sts: AwsStsBackend
) -> None:
    role = agent.role()
    short = asyncio.run(sts.issue(agent.request(sts_spec(role), ttl=datetime.timedelta(minutes=2))))
    explicit = asyncio.run(sts.issue(agent.request(sts_spec(role, durationSeconds=3600))))
    assert 890 < seconds_left(short.expires_at) <= 900
    assert 3590 < seconds_left(explicit.expires_at) <= 3600


def test_a_session_policy_is_passed(agent: Agent, sts: AwsStsBackend) -> None:
    issued = asyncio.run(sts.issue(agent.request(sts_spec(agent.role(), sessionPolicy=POLICY))))
    assert assumed_role(agent.env["AWS_ENDPOINT_URL"], issued.lease_id)["policy"] == POLICY


def test_web_identity_through_the_standard_endpoint(agent: Agent, sts: AwsStsBackend) -> None:
    spec = sts_spec(agent.role(), webIdentity={})
    issued = asyncio.run(sts.issue(agent.request(spec)))
    assert issued.lease_id.endswith(f"/{expected_session(agent)}")
    assert 1190 < seconds_left(issued.expires_at) <= 1200
    asyncio.run(sts.check(spec))


def test_what_sts_receives_session_tags_and_an_unsigned_web_identity_call(
    agent: Agent, sts: AwsStsBackend, tmp_path: Path
) -> None:
    with private_moto(tmp_path) as server:
        role = agent.role(server.endpoint)
        server.post("/moto-api/recorder/start-recording")
        tagged = sts_spec(role, endpoint=server.endpoint, sessionPolicy=POLICY)
        web = sts_spec(role, endpoint=server.endpoint, webIdentity={"audience": "sts.example"})

        asyncio.run(sts.issue(agent.request(tagged)))
        asyncio.run(sts.issue(agent.request(web)))

        calls = [e for e in server.recorded() if e["form"].get("Action", "").startswith("Assume")]
    assume, with_token = calls
    session = expected_session(agent)

    assert assume["form"]["Action"] == "AssumeRole"
    assert assume["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    tags = {
        assume["form"][f"Tags.member.{i}.Key"]: assume["form"][f"Tags.member.{i}.Value"]
        for i in (1, 2, 3)
    }
    assert tags == {
        "agentcred:namespace": agent.namespace,
        "agentcred:task": TASK,
        "agentcred:service-account": SA,
    }
    assert assume["form"]["RoleSessionName"] == session
    assert assume["form"]["DurationSeconds"] == "1200"
    assert assume["form"]["Policy"] == POLICY

    assert with_token["form"]["Action"] == "AssumeRoleWithWebIdentity"
    assert "Authorization" not in with_token["headers"]  # unsigned: no operator credentials
    assert not any(k.startswith("Tags.") for k in with_token["form"])
    assert with_token["form"]["RoleSessionName"] == session
    token = with_token["form"]["WebIdentityToken"]
    assert token == agent.tokens[-1]  # the TokenRequest token, as issued
    claims = jwt_claims(token)
    assert claims["sub"] == f"system:serviceaccount:{agent.namespace}:{SA}"
    assert claims["aud"] == ["sts.example"]


# -- refusals, and what no message, repr or log holds ----------------------------------------


def test_refusals_are_denied_and_no_secret_shows_anywhere(
    agent: Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentcred")
    value = f"sk-{uuid.uuid4().hex}"
    issued_all: list[Issued] = []
    errors: list[BackendError] = []

    def collect(coro: Any) -> None:
        try:
            issued_all.append(asyncio.run(coro))
        except BackendError as exc:
            errors.append(exc)

    with private_moto(tmp_path) as server:
        admin_sm = agent.aws("secretsmanager", server.endpoint)
        iam = agent.aws("iam", server.endpoint)
        admin_sm.create_secret(Name="llm", SecretString=json.dumps({"api_key": value}))
        admin_sm.create_secret(Name="broken", SecretString=f'{{"api_key": "{value}"')
        role = agent.role(server.endpoint)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        read = sm_spec("llm", endpoint=server.endpoint)
        broken = sm_spec("broken", endpoint=server.endpoint)
        assume = sts_spec(role, endpoint=server.endpoint)
        web = sts_spec(role, endpoint=server.endpoint, webIdentity={})

        # Before auth is on: everything is served; keep what was issued for the scan.
        with_auth_off = (AwsSecretsManagerBackend(), AwsStsBackend())
        collect(with_auth_off[0].issue(agent.request(read)))
        collect(with_auth_off[0].issue(agent.request(broken)))
        collect(with_auth_off[1].issue(agent.request(assume)))
        collect(with_auth_off[1].issue(agent.request(web)))
        for backend in with_auth_off:
            asyncio.run(backend.aclose())
        assert [type(e) for e in errors] == [BackendInvalidConfig]
        assert len(issued_all) == 3

        # The runtime twin of INITIAL_NO_AUTH_ACTION_COUNT=0: from now on moto checks
        # every signature and IAM policy.
        server.post("/moto-api/reset-auth", b"0")

        # The operator's key is unknown to moto's IAM ("testing"): refused.
        unknown = (AwsSecretsManagerBackend(), AwsStsBackend())
        collect(unknown[0].issue(agent.request(read)))
        collect(unknown[0].check(read))
        collect(unknown[1].issue(agent.request(assume)))
        collect(unknown[1].check(assume))
        for backend in unknown:
            asyncio.run(backend.aclose())

        # A known user without any policy: authenticated, then not authorized.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        nobody = (AwsSecretsManagerBackend(), AwsStsBackend())
        collect(nobody[0].issue(agent.request(read)))
        collect(nobody[1].issue(agent.request(assume)))
        for backend in nobody:
            asyncio.run(backend.aclose())

    refusals = errors[1:]
    assert [type(e) for e in refusals] == [BackendDenied] * 6, [str(e) for e in refusals]
    assert "InvalidClientTokenId" in str(refusals[0])
    assert "InvalidClientTokenId" in str(refusals[2])
    assert "AccessDenied" in str(refusals[4])
    assert "not authorized to perform: secretsmanager:GetSecretValue" in str(refusals[4])
    assert "not authorized to perform: sts:AssumeRole" in str(refusals[5])

    secrets = [value, key["SecretAccessKey"], *agent.tokens]
    for issued in issued_all:
        secrets += [v for k, v in issued.data.items() if k != "AWS_CREDENTIAL_EXPIRATION"]
    texts = [caplog.text]
    for issued in issued_all:
        texts += [str(issued), repr(issued), issued.lease_id]
    for exc in errors:
        texts += ["".join(traceback.format_exception(exc)), repr(exc)]
        linked: BaseException | None = exc.__cause__ or exc.__context__
        while linked is not None:
            texts += [str(linked), repr(linked)]
            linked = linked.__cause__ or linked.__context__
    assert len(secrets) >= 9
    for secret in secrets:
        assert not any(secret in text for text in texts)
