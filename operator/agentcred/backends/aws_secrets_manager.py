"""AWS Secrets Manager: a static secret, read with the operator's AWS identity.

A read, not a lease: ``issue`` reads one version of the secret (``GetSecretValue``),
the operator re-reads it every ``refreshInterval`` and propagates a rotated value.
Nothing can be renewed or revoked: ``renew`` raises BackendInvalidConfig (the lifecycle never
calls it for a static backend) and ``revoke`` does nothing (the value stays valid in
Secrets Manager; ending a task deletes the generated Kubernetes Secret, which is all
there is to end).

Which version: ``versionId`` if set, else the version labelled ``versionStage``
(default ``AWSCURRENT``). The stage is always sent, even for ``AWSCURRENT``, which AWS
would pick by itself: an explicit stage also avoids a known staleness quirk of moto.
``lease_id`` is ``<secret ARN>#<VersionId>`` (neither is secret), so a changed lease
id means a rotated value.

How the value becomes Secret keys:

* a ``SecretString`` holding a JSON object (the console's key/value form): one key per
  field; string values as they are, other values as JSON text (``1``, ``true``,
  ``{"a": 1}``). Field names must be valid Kubernetes Secret keys. A string that
  starts with ``{`` but does not parse is refused (BackendInvalidConfig, "not valid JSON"),
  rather than handed over as one opaque value;
* any other ``SecretString`` (plain text, or JSON that is not an object): one key,
  ``spec.awsSecretsManager.key`` (default ``value``), holding the string;
* a ``SecretBinary``: one key, ``key``, holding the bytes as UTF-8 text when they are
  valid UTF-8, else as base64 text (Kubernetes Secret values are bytes, but a
  credential's fields are text; decode the base64 in the consumer).

Credentials, region and endpoint come from the spec or boto3's standard resolution
(see :mod:`agentcred.backends.aws_common`). The operator's AWS identity needs
``secretsmanager:GetSecretValue`` on the secret (and ``kms:Decrypt`` on its key if it
is encrypted with a customer managed key), plus ``secretsmanager:DescribeSecret`` for
the Ready check. Secrets Manager has no notion of the agent's identity, so this backend
uses the operator's; scope it with a resource policy or IAM conditions per secret.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from agentcred.backends.aws_common import AwsBackend, Target, check_endpoint
from agentcred.backends.base import (
    BackendInvalidConfig,
    BackendNotFound,
    Capabilities,
    Issued,
    IssueRequest,
    NoLeaseLifecycle,
)
from agentcred.backends.pooled import STATIC, log_issue, unrenewable
from agentcred.models.resolved import AwsSecretsManagerSpec, ResolvedCredential

log = logging.getLogger(__name__)

KIND = "awsSecretsManager"
SERVICE = "secretsmanager"
DEFAULT_STAGE = "AWSCURRENT"
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")  # a Kubernetes Secret data key
_NOT_JSON = object()


class AwsSecretsManagerBackend(NoLeaseLifecycle, AwsBackend):
    """The Backend for AWS Secrets Manager; one instance per operator."""

    what_cannot_renew = "AWS Secrets Manager values"

    kind = KIND

    # -- declared abilities and checks ------------------------------------------------

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return STATIC

    def validate(self, spec: ResolvedCredential) -> None:
        self._block(spec)

    async def check(self, spec: ResolvedCredential) -> None:
        """The secret exists and the operator may see it; so does the version asked for."""
        sm = self._block(spec)
        action = f"describing secret {sm.secret_id} (DescribeSecret)"
        body = await self._clients.call(
            action, _target(sm), "describe_secret", SecretId=sm.secret_id
        )
        if body.get("DeletedDate"):
            raise BackendInvalidConfig(f"secret {sm.secret_id} is scheduled for deletion")
        if sm.version_id is None:
            stage = sm.version_stage or DEFAULT_STAGE
            stages = body.get("VersionIdsToStages") or {}
            if not any(stage in labels for labels in stages.values()):
                raise BackendNotFound(f"secret {sm.secret_id} has no version labelled {stage}")

    # -- issue, renew, revoke ------------------------------------------------------------

    async def issue(self, request: IssueRequest) -> Issued:
        sm = self._block(request.spec)
        params: dict[str, str] = {"SecretId": sm.secret_id}
        if sm.version_id is not None:
            params["VersionId"] = sm.version_id
            which = f"version {sm.version_id}"
        else:
            params["VersionStage"] = sm.version_stage or DEFAULT_STAGE
            which = f"stage {params['VersionStage']}"
        action = f"reading secret {sm.secret_id} ({which})"
        issued_at = _now()
        body = await self._clients.call(action, _target(sm), "get_secret_value", **params)
        data = secret_fields(body, sm.key, f"secret {sm.secret_id} ({which})")
        arn = str(body.get("ARN") or sm.secret_id)
        version = str(body.get("VersionId") or "")
        log_issue(log, request, "read AWS secret %s version %s", arn, version)
        return unrenewable(data, f"{arn}#{version}", issued_at)

    # -- plumbing ------------------------------------------------------------------------

    def _block(self, spec: ResolvedCredential) -> AwsSecretsManagerSpec:
        """The awsSecretsManager block of ``spec``, checked without I/O (``validate``)."""
        sm = spec.aws_secrets_manager
        if sm is None:
            raise BackendInvalidConfig(
                "spec.awsSecretsManager is not set: this is not an AWS Secrets Manager credential"
            )
        if not sm.secret_id:
            raise BackendInvalidConfig("spec.awsSecretsManager.secretId must not be empty")
        if sm.version_id is not None and sm.version_stage is not None:
            raise BackendInvalidConfig(
                "spec.awsSecretsManager: set at most one of versionStage and versionId"
            )
        if not SECRET_KEY.match(sm.key):
            raise BackendInvalidConfig(
                "spec.awsSecretsManager.key must be a valid Secret key "
                "(letters, digits, '-', '_', '.')"
            )
        check_endpoint(sm.endpoint, "spec.awsSecretsManager.endpoint")
        return sm


def _target(sm: AwsSecretsManagerSpec) -> Target:
    return Target(SERVICE, sm.region, sm.endpoint)


def secret_fields(body: Mapping[str, Any], key: str, what: str) -> dict[str, str]:
    """The credential fields of a GetSecretValue answer (see the module docstring).

    No message quotes any part of the value. Errors are raised outside ``except``
    blocks so that no exception context holds the value either.
    """
    text = body.get("SecretString")
    if isinstance(text, str):
        if not text.lstrip().startswith("{"):
            return {key: text}
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = _NOT_JSON
        if parsed is _NOT_JSON or not isinstance(parsed, dict):
            raise BackendInvalidConfig(
                f"the value of {what} starts like a JSON object but is not valid JSON"
            )
        if not parsed:
            raise BackendInvalidConfig(f"the value of {what} is an empty JSON object")
        fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}
        bad = sum(1 for k in fields if not SECRET_KEY.match(k))
        if bad:
            raise BackendInvalidConfig(
                f"{bad} field name(s) of the JSON object in {what} are not valid Secret keys "
                "(letters, digits, '-', '_', '.'; at most 253)"
            )
        return fields
    raw = body.get("SecretBinary")
    if isinstance(raw, bytes | bytearray):
        try:
            return {key: bytes(raw).decode("utf-8")}
        except UnicodeDecodeError:
            pass
        return {key: base64.b64encode(raw).decode("ascii")}
    raise BackendInvalidConfig(
        f"AWS's answer for {what} holds neither SecretString nor SecretBinary"
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
