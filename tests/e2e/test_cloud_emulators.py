"""Smoke tests: the cloud SDKs the backends use really talk to the testbed's emulators.

One test per behaviour the backends rely on, each against the running server (moto for
AWS, drongo for GCP Secret Manager), configured only
from the variables the testbed exports.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import boto3
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

pytestmark = pytest.mark.e2e


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- AWS (moto) -------------------------------------------------------------------------


def _aws(env: dict[str, str], service: str, **overrides: str) -> Any:
    settings = {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "region_name": env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
    settings.update(overrides)
    return boto3.session.Session().client(service, **settings)


def _trust_policy() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def test_aws_secrets_manager_serves_the_current_version(testbed_env: dict[str, str]) -> None:
    sm = _aws(testbed_env, "secretsmanager")
    name = _unique("agentcred-smoke/llm")
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": "first"}))
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"api_key": "second"}))

    current = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    previous = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")

    assert json.loads(current["SecretString"]) == {"api_key": "second"}
    assert json.loads(previous["SecretString"]) == {"api_key": "first"}
    assert current["VersionId"] != previous["VersionId"]


def test_aws_iam_creates_a_role(testbed_env: dict[str, str]) -> None:
    iam = _aws(testbed_env, "iam")
    name = _unique("agentcred-smoke")
    created = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust_policy())["Role"]

    fetched = iam.get_role(RoleName=name)["Role"]

    assert fetched["Arn"] == created["Arn"]
    assert fetched["Arn"].endswith(f":role/{name}")


def test_aws_sts_assume_role_issues_expiring_credentials(testbed_env: dict[str, str]) -> None:
    iam = _aws(testbed_env, "iam")
    role = iam.create_role(
        RoleName=_unique("agentcred-agent"), AssumeRolePolicyDocument=_trust_policy()
    )
    sts = _aws(testbed_env, "sts")
    before = dt.datetime.now(dt.UTC)

    issued = sts.assume_role(
        RoleArn=role["Role"]["Arn"], RoleSessionName="claim-4711", DurationSeconds=900
    )["Credentials"]

    assert issued["AccessKeyId"] and issued["SecretAccessKey"] and issued["SessionToken"]
    expires = issued["Expiration"]
    assert before + dt.timedelta(minutes=14) < expires <= before + dt.timedelta(minutes=16)
    # The issued credentials are usable in their own right and carry the assumed role.
    as_agent = _aws(
        testbed_env,
        "sts",
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
    )
    identity = as_agent.get_caller_identity()
    assert ":assumed-role/" in identity["Arn"]
    assert identity["Arn"].endswith("/claim-4711")


# --- GCP Secret Manager (drongo) ------------------------------------------------------------


def test_gcp_secret_manager_latest_is_newest_enabled_version(testbed_env: dict[str, str]) -> None:
    client = secretmanager.SecretManagerServiceClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=testbed_env["GCP_SECRET_MANAGER_ENDPOINT"]),
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )
    secret = client.create_secret(
        request={
            "parent": f"projects/{testbed_env['GCP_PROJECT']}",
            "secret_id": _unique("llm-key"),
            "secret": {"replication": {"automatic": {}}},
        }
    )
    first = client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"one"}})
    second = client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"two"}})

    latest = client.access_secret_version(request={"name": f"{secret.name}/versions/latest"})
    assert latest.name == second.name
    assert latest.payload.data == b"two"

    client.disable_secret_version(request={"name": second.name})
    latest = client.access_secret_version(request={"name": f"{secret.name}/versions/latest"})
    assert latest.name == first.name
    assert latest.payload.data == b"one"
