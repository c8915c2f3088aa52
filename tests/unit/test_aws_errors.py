"""The AWS backends' one error mapping, and their pure parts (no server involved)."""

from __future__ import annotations

import asyncio
import datetime
import re
import socket
import traceback
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    UnknownServiceError,
)
from botocore.parsers import ResponseParserError

from agentcred.backends import aws_common
from agentcred.backends.aws_common import REDACTED, AwsClients, Target, aws_error
from agentcred.backends.aws_secrets_manager import AwsSecretsManagerBackend, secret_fields
from agentcred.backends.aws_sts import (
    AwsStsBackend,
    duration_seconds,
    expiration_text,
    session_name,
    session_tags,
    tag_value,
)
from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Identity,
    IssueRequest,
    Lease,
)
from agentcred.backends.blocking import BlockingRunner
from agentcred.backends.registry import BackendRegistry
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential, parse_resolved

ROLE = "arn:aws:iam::123456789012:role/agent"
SESSION_CHARSET = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
TAG_CHARSET = re.compile(r"^[\w .:/=+@-]*$")


def client_error(
    code: str, message: str = "", status: int = 400, headers: dict[str, str] | None = None
) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "GetSecretValue")


# -- aws_error ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (
            client_error("ResourceNotFoundException", "can't find", 400),
            BackendNotFound,
            "can't find",
        ),
        (client_error("NoSuchEntity", "role r", 404), BackendNotFound, "NoSuchEntity: role r"),
        (
            client_error("AccessDeniedException", "not authorized", 400),
            BackendDenied,
            "not authorized",
        ),
        (client_error("AccessDenied", "User u", 403), BackendDenied, "AccessDenied: User u"),
        (client_error("UnrecognizedClientException", "bad key", 400), BackendDenied, "bad key"),
        (
            client_error("InvalidClientTokenId", "invalid", 403),
            BackendDenied,
            "InvalidClientTokenId",
        ),
        (client_error("ExpiredToken", "expired", 400), BackendDenied, "expired"),
        (client_error("InvalidIdentityToken", "no OIDC", 400), BackendDenied, "no OIDC"),
        (client_error("DecryptionFailure", "KMS", 400), BackendDenied, "KMS"),
        (client_error("ValidationException", "bad", 400), BackendInvalidConfig, "AWS rejected"),
        (client_error("ValidationError", "duration", 400), BackendInvalidConfig, "duration"),
        (client_error("InvalidParameterException", "p", 400), BackendInvalidConfig, "p"),
        (client_error("MalformedPolicyDocument", "policy", 400), BackendInvalidConfig, "policy"),
        (client_error("InvalidRequestException", "deleted", 400), BackendInvalidConfig, "deleted"),
        (client_error("ThrottlingException", "slow down", 400), BackendUnavailable, "slow down"),
        (client_error("Throttling", "Rate exceeded", 400), BackendUnavailable, "Rate exceeded"),
        (client_error("InternalServiceError", "oops", 500), BackendUnavailable, "HTTP 500"),
        (client_error("SomethingNew", "", 503), BackendUnavailable, "HTTP 503"),
        (client_error("SomethingNew", "", 429), BackendUnavailable, "HTTP 429"),
        (client_error("SomethingNew", "who", 403), BackendDenied, "HTTP 403"),
        (client_error("SomethingNew", "", 404), BackendNotFound, "HTTP 404"),
        (client_error("SomethingNew", "odd", 400), BackendInvalidConfig, "SomethingNew: odd"),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9/"),
            BackendUnavailable,
            "127.0.0.1:9",
        ),
        (ConnectTimeoutError(endpoint_url="http://x/"), BackendUnavailable, "cannot reach AWS"),
        (ReadTimeoutError(endpoint_url="http://x/"), BackendUnavailable, "Read timeout"),
        (ConnectionClosedError(endpoint_url="http://x/"), BackendUnavailable, "closed"),
        (NoCredentialsError(), BackendInvalidConfig, "operator has no AWS credentials"),
        (
            PartialCredentialsError(provider="env", cred_var="k"),
            BackendInvalidConfig,
            "no AWS cred",
        ),
        (NoRegionError(), BackendInvalidConfig, "no AWS region"),
        (UnknownServiceError(service_name="x", known_service_names="y"), BackendInvalidConfig, "x"),
        (
            ValueError("boom"),
            BackendInvalidConfig,
            "unexpected answer to reading secret s (ValueError)",
        ),
    ],
)
def test_each_failure_maps_to_one_typed_error(
    exc: Exception, expected: type[BackendError], text: str
) -> None:
    mapped = aws_error(exc, "reading secret s")
    assert type(mapped) is expected
    assert "reading secret s" in str(mapped)
    assert text in str(mapped)


def test_an_unparsed_xml_error_body_yields_its_code_and_message() -> None:
    # moto (and proxies) answer a JSON-protocol call's auth failure with an XML body:
    # botocore then reports the HTTP status as the code and the raw XML as the message.
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n<ErrorResponse><Errors><Error>'
        "<Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/u is not authorized"
        " to perform: secretsmanager:GetSecretValue</Message><Type>Sender</Type></Error>"
        "</Errors></ErrorResponse>"
    )
    mapped = aws_error(client_error("403", body, 403), "reading secret s")
    assert type(mapped) is BackendDenied
    assert str(mapped) == (
        "AWS denied reading secret s: AccessDenied: User: arn:aws:iam::1:user/u is not "
        "authorized to perform: secretsmanager:GetSecretValue"
    )


def test_throttling_keeps_a_retry_after_hint() -> None:
    mapped = aws_error(client_error("ThrottlingException", "", 400, {"retry-after": "7"}), "x")
    assert isinstance(mapped, BackendUnavailable)
    assert mapped.retry_after == 7.0
    plain = aws_error(client_error("ThrottlingException", "", 400), "x")
    assert isinstance(plain, BackendUnavailable)
    assert plain.retry_after is None


def test_redacted_values_never_reach_the_message() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.secret-claims.signature"
    exc = client_error("ValidationError", f"Value '{token}' at 'webIdentityToken' is bad")
    mapped = aws_error(exc, "assuming r", redact=[token, ""])
    assert token not in str(mapped)
    assert REDACTED in str(mapped)


def test_the_parameter_report_shows_no_values() -> None:
    report = (
        "Invalid type for parameter Policy, value: s3cr3t-value, type: <class 'int'>, "
        "valid types: <class 'str'>\nMissing required parameter in input: \"RoleArn\""
    )
    mapped = aws_error(ParamValidationError(report=report), "assuming r")
    assert type(mapped) is BackendInvalidConfig
    assert "s3cr3t-value" not in str(mapped)
    assert "Invalid type for parameter Policy (value not shown)" in str(mapped)
    assert 'Missing required parameter in input: "RoleArn"' in str(mapped)


def test_a_credential_provider_failure_does_not_quote_the_provider() -> None:
    exc = CredentialRetrievalError(provider="custom-process", error_msg="leaked AKIA/secret")
    mapped = aws_error(exc, "reading secret s")
    assert type(mapped) is BackendUnavailable
    assert "custom-process" in str(mapped)
    assert "leaked" not in str(mapped)


def test_aws_text_is_cut_at_300_characters() -> None:
    mapped = aws_error(client_error("ValidationException", "x" * 5000), "reading secret s")
    quoted = str(mapped).split(": ", 2)[2]
    assert len(quoted) == 300
    assert quoted.endswith("...")


class _Failing(AwsClients):
    """AwsClients whose SDK call fails with ``error`` (no network)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(BlockingRunner("test", 1), timeout=1)
        self.error = error

    def _invoke(self, target: Target, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        raise self.error


def test_a_call_whose_error_echoes_a_redacted_value_drops_the_sdk_error() -> None:
    token = "eyJ.the-token.sig"
    clients = _Failing(client_error("ValidationError", f"bad token {token}"))
    with pytest.raises(BackendInvalidConfig) as caught:
        asyncio.run(clients.call("assuming r", Target("sts", None, None), "x", redact=[token]))
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert token not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        # botocore's parser quotes the whole answer (an STS answer holds credentials).
        (
            ResponseParserError("invalid XML received:\n<SessionToken>FQoG-secret</Sess"),
            BackendUnavailable,
            "could not be parsed",
        ),
        # Not botocore's own: moto routes an unsigned GetCallerIdentity to S3, whose
        # answer makes the STS parser raise KeyError('GetCallerIdentityResult').
        (KeyError("FQoG-secret"), BackendInvalidConfig, "unexpected answer to x (KeyError)"),
    ],
)
def test_an_error_that_may_quote_the_answer_is_mapped_and_dropped(
    error: Exception, expected: type[BackendError], text: str
) -> None:
    clients = _Failing(error)
    with pytest.raises(expected, match=re.escape(text)) as caught:
        asyncio.run(clients.call("x", Target("sts", None, None), "x"))
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert "FQoG-secret" not in "".join(traceback.format_exception(caught.value))


def test_a_parameter_error_is_not_kept_as_cause() -> None:
    report = "Invalid type for parameter Policy, value: s3cr3t-value, type: <class 'int'>"
    clients = _Failing(ParamValidationError(report=report))
    with pytest.raises(BackendInvalidConfig) as caught:
        asyncio.run(clients.call("assuming r", Target("sts", None, None), "x"))
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)
    assert "s3cr3t-value" not in "".join(traceback.format_exception(caught.value))


def test_a_call_whose_error_holds_nothing_secret_keeps_the_sdk_error_as_cause() -> None:
    clients = _Failing(client_error("ResourceNotFoundException", "can't find"))
    with pytest.raises(BackendNotFound) as caught:
        asyncio.run(clients.call("reading s", Target("secretsmanager", None, None), "x"))
    assert isinstance(caught.value.__cause__, ClientError)


# -- STS names, tags, durations ----------------------------------------------------------


def test_the_session_name_names_namespace_and_task() -> None:
    assert session_name("team-a", "claim-4711") == "agentcred.team-a.claim-4711"


def test_the_session_name_is_sanitised_to_the_sts_charset() -> None:
    name = session_name("team a", "claim/4711:ü*")
    assert SESSION_CHARSET.match(name)
    assert name == "agentcred.team-a.claim-4711---"


def test_a_long_session_name_is_cut_to_64_with_a_hash_of_the_whole() -> None:
    namespace = "n" * 63
    first = session_name(namespace, "task-one-" + "x" * 200)
    second = session_name(namespace, "task-one-" + "x" * 199 + "y")
    assert len(first) == len(second) == 64
    assert SESSION_CHARSET.match(first)
    assert first.startswith("agentcred.nnnn")
    assert first != second  # same first 55 characters, distinct hashes
    assert first[:55] == second[:55]
    assert session_name(namespace, "task-one-" + "x" * 200) == first  # deterministic


def test_session_tags_carry_namespace_task_and_service_account() -> None:
    identity = _identity(namespace="team-a", task="claim-4711", service_account="agent")
    assert session_tags(identity) == [
        {"Key": "agentcred:namespace", "Value": "team-a"},
        {"Key": "agentcred:task", "Value": "claim-4711"},
        {"Key": "agentcred:service-account", "Value": "agent"},
    ]


def test_tag_values_are_sanitised_and_cut_to_256() -> None:
    assert tag_value("a b.c:d/e=f+g@h-i_j") == "a b.c:d/e=f+g@h-i_j"  # all allowed
    assert tag_value("x*y#z,w") == "x_y_z_w"
    assert TAG_CHARSET.match(tag_value("ä<>&'\"!"))
    assert len(tag_value("v" * 1000)) == 256


@pytest.mark.parametrize(
    ("duration", "ttl_seconds", "expected"),
    [
        (None, 60, 900),  # STS's minimum
        (None, 1200, 1200),
        (None, 1200.2, 1201),  # rounded up
        (None, 10 * 86400, 43200),  # STS's maximum
        (3600, 60, 3600),  # an explicit duration wins over the TTL
    ],
)
def test_duration_is_the_spec_or_the_ttl_within_sts_bounds(
    duration: int | None, ttl_seconds: float, expected: int
) -> None:
    block: dict[str, Any] = {"roleArn": ROLE}
    if duration is not None:
        block["durationSeconds"] = duration
    sts = parse_resolved({"awsSts": block}).aws_sts
    assert sts is not None
    assert duration_seconds(sts, datetime.timedelta(seconds=ttl_seconds)) == expected


def test_the_expiration_is_iso_8601_utc() -> None:
    when = datetime.datetime(
        2030, 1, 2, 3, 4, 5, 678, tzinfo=datetime.timezone(-datetime.timedelta(hours=5))
    )
    assert expiration_text(when) == "2030-01-02T08:04:05Z"


# -- Secrets Manager values ----------------------------------------------------------------


def test_a_json_object_becomes_one_field_per_key() -> None:
    body = {"SecretString": '{"api_key": "sk-1", "n": 1, "on": true, "o": {"x": [1]}, "z": null}'}
    assert secret_fields(body, "value", "s") == {
        "api_key": "sk-1",
        "n": "1",
        "on": "true",
        "o": '{"x": [1]}',
        "z": "null",
    }


@pytest.mark.parametrize("text", ["hunter2", '["a", 1]', '"quoted"', "42", "", " not {json"])
def test_anything_but_a_json_object_is_one_field(text: str) -> None:
    assert secret_fields({"SecretString": text}, "token", "s") == {"token": text}


def test_a_malformed_json_object_is_refused_without_quoting_it() -> None:
    value = '{"api_key": "sk-do-not-show", oops'
    with pytest.raises(BackendInvalidConfig, match="not valid JSON") as caught:
        secret_fields({"SecretString": value}, "value", "secret s (stage AWSCURRENT)")
    error = caught.value
    assert "sk-do-not-show" not in "".join(traceback.format_exception(error))
    assert error.__cause__ is None
    assert error.__context__ is None  # the JSONDecodeError (holding the text) is gone


def test_an_empty_json_object_and_bad_field_names_are_refused() -> None:
    with pytest.raises(BackendInvalidConfig, match="empty JSON object"):
        secret_fields({"SecretString": "{}"}, "value", "s")
    with pytest.raises(BackendInvalidConfig, match="2 field name") as caught:
        secret_fields({"SecretString": '{"ok": "1", "a b": "sk-x", "c/d": "2"}'}, "value", "s")
    assert "a b" not in str(caught.value)


def test_a_binary_secret_is_text_when_utf8_else_base64() -> None:
    assert secret_fields({"SecretBinary": "pässword".encode()}, "value", "s") == {
        "value": "pässword"
    }
    assert secret_fields({"SecretBinary": b"\xff\x00\x10"}, "blob", "s") == {"blob": "/wAQ"}


def test_an_answer_without_a_value_is_refused() -> None:
    with pytest.raises(BackendInvalidConfig, match="neither SecretString nor SecretBinary"):
        secret_fields({"ARN": "arn", "VersionId": "v"}, "value", "s")


# -- validate, capabilities, renew, revoke ------------------------------------------------


def sm_spec(**block: Any) -> ResolvedCredential:
    return parse_resolved({"awsSecretsManager": {"secretId": "agents/llm", **block}})


def sts_spec(**block: Any) -> ResolvedCredential:
    return parse_resolved({"awsSts": {"roleArn": ROLE, **block}})


@pytest.mark.parametrize(
    ("block", "text"),
    [
        ({"versionStage": "AWSCURRENT", "versionId": "v" * 32}, "at most one"),
        ({"key": "a b"}, "key must be a valid Secret key"),
        ({"endpoint": "ftp://x"}, "http:// or https://"),
        ({"endpoint": "https://user:pw@sm.example"}, "must not hold credentials"),
    ],
)
def test_secrets_manager_validate_refuses(block: dict[str, Any], text: str) -> None:
    with pytest.raises(BackendInvalidConfig, match=text):
        AwsSecretsManagerBackend().validate(sm_spec(**block))


@pytest.mark.parametrize(
    ("block", "text"),
    [
        ({"roleArn": "arn:aws:iam::1:role/r"}, "roleArn must look like"),
        ({"durationSeconds": 60}, "between 900 and 43200"),
        ({"durationSeconds": 50000}, "between 900 and 43200"),
        ({"sessionPolicy": "{not json"}, "sessionPolicy must be an IAM policy JSON object"),
        ({"sessionPolicy": "[]"}, "sessionPolicy must be an IAM policy JSON object"),
        ({"webIdentity": {"audience": ""}}, "audience must not be empty"),
        ({"endpoint": "sts.example"}, "http:// or https://"),
    ],
)
def test_sts_validate_refuses(block: dict[str, Any], text: str) -> None:
    with pytest.raises(BackendInvalidConfig, match=text):
        AwsStsBackend().validate(sts_spec(**block))


def test_each_backend_refuses_the_other_backends_spec() -> None:
    with pytest.raises(BackendInvalidConfig, match="not an AWS Secrets Manager credential"):
        AwsSecretsManagerBackend().validate(sts_spec())
    with pytest.raises(BackendInvalidConfig, match="not an AWS STS credential"):
        AwsStsBackend().validate(sm_spec())


def test_valid_specs_pass_and_capabilities_are_declared() -> None:
    sm, sts = AwsSecretsManagerBackend(), AwsStsBackend()
    sm.validate(sm_spec(versionStage="AWSPREVIOUS", key="token", endpoint="http://127.0.0.1:1"))
    sts.validate(sts_spec(durationSeconds=900, sessionPolicy='{"Version": "2012-10-17"}'))
    sts.validate(sts_spec(webIdentity={}))
    caps = sm.capabilities(sm_spec())
    assert (caps.renewable, caps.revocable, caps.static) == (False, False, True)
    caps = sts.capabilities(sts_spec())
    assert (caps.renewable, caps.revocable, caps.static) == (False, False, False)


def test_renew_is_refused_and_revoke_does_nothing() -> None:
    ttl = datetime.timedelta(minutes=5)
    for backend, spec in ((AwsSecretsManagerBackend(), sm_spec()), (AwsStsBackend(), sts_spec())):
        with pytest.raises(BackendInvalidConfig, match="renewed"):
            asyncio.run(backend.renew(Lease(spec, "lease", None, "c"), ttl))
        assert asyncio.run(backend.revoke(Lease(spec, "lease", None, "c"))) is None
        asyncio.run(backend.aclose())


def test_the_registry_builds_both_aws_backends() -> None:
    registry = BackendRegistry(BackendSettings(concurrency=2))
    assert registry.for_kind("awsSecretsManager").kind == "awsSecretsManager"
    assert registry.for_kind("awsSts").kind == "awsSts"
    assert registry.for_spec(sts_spec()) is registry.for_kind("awsSts")


# -- credentials: none needed for web identity, a clear error otherwise ----------------------


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment in which boto3's standard chain finds no credentials at all."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _identity(
    namespace: str = "team-a", task: str = "claim-4711", service_account: str = "agent"
) -> Identity:
    async def token_for(audience: str) -> str:
        return f"eyJ.token-for-{audience}.sig"

    async def secret_value(name: str, key: str) -> str:
        raise AssertionError("not used")

    return Identity(
        namespace=namespace,
        service_account=service_account,
        task=task,
        task_uid="uid",
        token_for=token_for,
        secret_value=secret_value,
    )


def _request(spec: ResolvedCredential) -> IssueRequest:
    return IssueRequest("c", spec, _identity(), datetime.timedelta(minutes=15), "cid")


@pytest.mark.usefixtures("no_aws_credentials")
def test_without_credentials_the_operator_says_so() -> None:
    endpoint = _closed_endpoint()
    sm = AwsSecretsManagerBackend(timeout=1)
    sts = AwsStsBackend(timeout=1)
    try:
        with pytest.raises(BackendInvalidConfig, match="operator has no AWS credentials"):
            asyncio.run(sm.issue(_request(sm_spec(region="us-east-1", endpoint=endpoint))))
        with pytest.raises(BackendInvalidConfig, match="operator has no AWS credentials"):
            asyncio.run(sts.issue(_request(sts_spec(region="us-east-1", endpoint=endpoint))))
        # Web identity is unsigned: no credentials needed; it gets as far as the network.
        web = sts_spec(region="us-east-1", endpoint=endpoint, webIdentity={})
        with pytest.raises(BackendUnavailable, match="cannot reach AWS"):
            asyncio.run(sts.issue(_request(web)))
    finally:
        asyncio.run(sm.aclose())
        asyncio.run(sts.aclose())


@pytest.mark.usefixtures("no_aws_credentials")
def test_without_a_region_the_operator_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    sm = AwsSecretsManagerBackend(timeout=1)
    try:
        with pytest.raises(BackendInvalidConfig, match="no AWS region"):
            asyncio.run(sm.issue(_request(sm_spec())))
    finally:
        asyncio.run(sm.aclose())


def test_clients_are_cached_per_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients = aws_common.AwsClients(BlockingRunner("test", 2), timeout=1)
    try:
        a = clients._client(Target("sts", "eu-west-1", None))
        assert clients._client(Target("sts", "eu-west-1", None)) is a
        assert clients._client(Target("sts", "eu-west-1", None, unsigned=True)) is not a
        assert clients._client(Target("sts", "eu-west-2", None)) is not a
        assert a.meta.region_name == "eu-west-1"
    finally:
        clients.close()
