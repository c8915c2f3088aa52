"""AWS STS: temporary credentials of an IAM role, per task, named and tagged after it.

``issue`` assumes ``spec.awsSts.roleArn`` and returns the session's keys as
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and
``AWS_CREDENTIAL_EXPIRATION`` (ISO 8601, UTC, e.g. ``2030-01-01T12:00:00Z``: the
variable the AWS SDKs read to know when to refresh). ``lease_id`` is the
AssumedRoleUser ARN (``arn:aws:sts::<account>:assumed-role/<role>/<session name>``),
``expires_at`` the credentials' Expiration.

Two ways in:

* ``webIdentity`` set: ``AssumeRoleWithWebIdentity`` with a TokenRequest token of the
  task's ServiceAccount (audience ``webIdentity.audience``, default
  ``sts.amazonaws.com``): the agent's own identity. The request is unsigned; the
  operator needs no AWS credentials at all. The role's trust policy must trust the
  cluster's OIDC issuer (as for IRSA) and may match ``sub`` =
  ``system:serviceaccount:<namespace>:<serviceaccount>``.
* otherwise: ``AssumeRole`` with the operator's own AWS credentials (boto3's standard
  chain: IRSA, EKS Pod Identity, instance profile, environment), carrying session tags
  ``agentcred:namespace``, ``agentcred:task`` and ``agentcred:service-account``, so
  that the role's policies can use ``aws:PrincipalTag/...`` and CloudTrail shows who
  the session was for. The role's trust policy must allow ``sts:AssumeRole`` *and*
  ``sts:TagSession`` to the operator's principal. (AssumeRoleWithWebIdentity takes no
  tags; its session tags, if any, come from the token, and its ``sub`` claim names the
  ServiceAccount.)

Both use the session name ``agentcred.<namespace>.<task>`` (STS's charset
``[\\w+=,.@-]``; names longer than 64 characters are cut and end in a hash of the
whole) and, if set, ``sessionPolicy`` as the inline session policy that narrows the
role's permissions.

Lifetimes: ``DurationSeconds`` is ``durationSeconds``, else the credential's TTL, capped
by the backend's ``maxTTL`` and by the time left until the task's deadline
(models/ceiling.sts_duration), within STS's bounds of 900 to 43200 seconds. STS never
issues less than 15 minutes, so credentials can outlive a shorter task (or a deadline
less than 15 minutes away) by up to that; the ``Expiration`` STS returns is checked
against ``maxTTL`` before anything is written (``TTLExceeded``); the role's
``MaxSessionDuration`` (1 hour unless raised) caps longer asks (STS refuses them:
BackendInvalidConfig), and role chaining caps every session at 1 hour.

Nothing can be renewed or revoked: ``renew`` raises BackendInvalidConfig (the lifecycle
re-issues before expiry instead, then switches the Secret) and ``revoke`` does nothing
(STS credentials cannot be ended early; they stop working at expiry, so keep durations
short). ``check`` calls ``GetCallerIdentity`` with the operator's credentials for
AssumeRole (STS is reachable, the credentials exist and are valid). For web identity it
only resolves the region and endpoint: every unsigned STS call needs a token, which
only a task has (and an unsigned GetCallerIdentity proves nothing: AWS refuses it, and
moto 5.2.5 routes it to its S3 backend, whose answer botocore cannot parse).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agentcred.backends.aws_common import AwsBackend, Target, check_endpoint
from agentcred.backends.base import (
    BackendInvalidConfig,
    Capabilities,
    Identity,
    Issued,
    IssueRequest,
    NoLeaseLifecycle,
)
from agentcred.backends.pooled import log_issue, unrenewable
from agentcred.models.ceiling import Validity, sts_duration
from agentcred.models.resolved import AwsStsSpec, ResolvedCredential

log = logging.getLogger(__name__)

KIND = "awsSts"
SERVICE = "sts"
MIN_DURATION = 900
MAX_DURATION = 43200
SESSION_PREFIX = "agentcred"
SESSION_NAME_MAX = 64
HASH_LENGTH = 8
TAG_VALUE_MAX = 256
TAG_NAMESPACE = "agentcred:namespace"
TAG_TASK = "agentcred:task"
TAG_SERVICE_ACCOUNT = "agentcred:service-account"
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
_NOT_SESSION_CHAR = re.compile(r"[^\w+=,.@-]", re.ASCII)
_NOT_TAG_CHAR = re.compile(r"[^\w .:/=+@-]")  # STS: [\p{L}\p{Z}\p{N}_.:/=+\-@]*
_NOT_JSON = object()


class AwsStsBackend(NoLeaseLifecycle, AwsBackend):
    """The Backend for AWS STS (AssumeRole, AssumeRoleWithWebIdentity); one per operator."""

    what_cannot_renew = "STS sessions"

    kind = KIND

    # -- declared abilities and checks ------------------------------------------------

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return Capabilities(renewable=False, revocable=False, static=False)

    def validate(self, spec: ResolvedCredential) -> None:
        self._block(spec)

    async def check(self, spec: ResolvedCredential) -> None:
        sts = self._block(spec)
        if sts.web_identity is None:
            action = "checking the operator's AWS credentials (GetCallerIdentity)"
            await self._clients.call(action, _target(sts), "get_caller_identity")
            return
        # Every unsigned STS call needs a token, and only a task has one: settle for
        # resolving the region and endpoint. An unreachable STS shows at the first issue.
        await self._clients.prepare("setting up the STS client", _target(sts, unsigned=True))

    # -- issue, renew, revoke ------------------------------------------------------------

    async def issue(self, request: IssueRequest) -> Issued:
        sts = self._block(request.spec)
        identity = request.identity
        params: dict[str, Any] = {
            "RoleArn": sts.role_arn,
            "RoleSessionName": session_name(identity.namespace, identity.task),
            "DurationSeconds": duration_seconds(
                sts, request.ttl, max_ttl=request.spec.max_ttl, deadline=request.deadline
            ),
        }
        if sts.session_policy:
            params["Policy"] = sts.session_policy
        issued_at = _now()
        if sts.web_identity is not None:
            action = f"assuming role {sts.role_arn} with web identity (AssumeRoleWithWebIdentity)"
            token = await identity.token_for(sts.web_identity.audience)
            body = await self._clients.call(
                action,
                _target(sts, unsigned=True),
                "assume_role_with_web_identity",
                redact=(token,),
                WebIdentityToken=token,
                **params,
            )
        else:
            action = f"assuming role {sts.role_arn} (AssumeRole)"
            body = await self._clients.call(
                action, _target(sts), "assume_role", Tags=session_tags(identity), **params
            )
        issued = _issued(body, issued_at, action)
        log_issue(log, request, "assumed %s until %s", issued.lease_id, issued.expires_at)
        return issued

    # -- plumbing ------------------------------------------------------------------------

    def _block(self, spec: ResolvedCredential) -> AwsStsSpec:
        """The awsSts block of ``spec``, checked without I/O (``validate``)."""
        sts = spec.aws_sts
        if sts is None:
            raise BackendInvalidConfig("spec.awsSts is not set: this is not an AWS STS credential")
        if not ROLE_ARN.match(sts.role_arn):
            raise BackendInvalidConfig(
                "spec.awsSts.roleArn must look like arn:aws:iam::123456789012:role/NAME"
            )
        duration = sts.duration_seconds
        if duration is not None and not MIN_DURATION <= duration <= MAX_DURATION:
            raise BackendInvalidConfig(
                f"spec.awsSts.durationSeconds must be between {MIN_DURATION} and {MAX_DURATION}"
            )
        if sts.session_policy is not None and not _is_json_object(sts.session_policy):
            raise BackendInvalidConfig(
                "spec.awsSts.sessionPolicy must be an IAM policy JSON object"
            )
        if sts.web_identity is not None and not sts.web_identity.audience:
            raise BackendInvalidConfig("spec.awsSts.webIdentity.audience must not be empty")
        check_endpoint(sts.endpoint, "spec.awsSts.endpoint")
        return sts


def _target(sts: AwsStsSpec, *, unsigned: bool = False) -> Target:
    return Target(SERVICE, sts.region, sts.endpoint, unsigned)


def session_name(namespace: str, task: str) -> str:
    """``agentcred.<namespace>.<task>`` in STS's RoleSessionName charset, 2-64 characters.

    Characters outside ``[\\w+=,.@-]`` become ``-``; a longer name keeps its start and
    ends in ``-`` plus a hash of the whole name, so that distinct tasks stay distinct.
    """
    name = _NOT_SESSION_CHAR.sub("-", f"{SESSION_PREFIX}.{namespace}.{task}")
    if len(name) <= SESSION_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    return f"{name[: SESSION_NAME_MAX - HASH_LENGTH - 1]}-{digest}"


def tag_value(value: str) -> str:
    """``value`` in STS's session tag value charset (others become ``_``), 256 at most."""
    return _NOT_TAG_CHAR.sub("_", value)[:TAG_VALUE_MAX]


def session_tags(identity: Identity) -> list[dict[str, str]]:
    return [
        {"Key": TAG_NAMESPACE, "Value": tag_value(identity.namespace)},
        {"Key": TAG_TASK, "Value": tag_value(identity.task)},
        {"Key": TAG_SERVICE_ACCOUNT, "Value": tag_value(identity.service_account)},
    ]


def duration_seconds(
    sts: AwsStsSpec,
    ttl: datetime.timedelta,
    *,
    max_ttl: datetime.timedelta | None = None,
    deadline: datetime.datetime | None = None,
) -> int:
    """``durationSeconds``, else the TTL rounded up, capped by ``max_ttl`` and the time
    left until ``deadline``, within STS's 900..43200 seconds."""
    wanted = sts.duration_seconds or math.ceil(ttl.total_seconds())
    return sts_duration(wanted, max_ttl=max_ttl, now=_now(), deadline=deadline)


def expiration_text(when: datetime.datetime) -> str:
    """``AWS_CREDENTIAL_EXPIRATION``: ISO 8601 in UTC, seconds precision, ``Z`` suffix."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _issued(body: Mapping[str, Any], issued_at: datetime.datetime, action: str) -> Issued:
    credentials = body.get("Credentials") or {}
    user = body.get("AssumedRoleUser") or {}
    expiration = credentials.get("Expiration")
    keys = ("AccessKeyId", "SecretAccessKey", "SessionToken")
    if not all(isinstance(credentials.get(k), str) and credentials.get(k) for k in keys):
        raise BackendInvalidConfig(f"STS's answer to {action} holds no credentials")
    if not isinstance(expiration, datetime.datetime) or not user.get("Arn"):
        raise BackendInvalidConfig(f"STS's answer to {action} has no Expiration or AssumedRoleUser")
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=datetime.UTC)
    expires_at = expiration.astimezone(datetime.UTC)
    data = {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
        "AWS_CREDENTIAL_EXPIRATION": expiration_text(expires_at),
    }
    issued = unrenewable(data, str(user["Arn"]), issued_at, expires_at)
    return replace(issued, validity=(Validity("STS session", expires_at),))


def _is_json_object(text: str) -> bool:
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = _NOT_JSON
    return isinstance(parsed, dict)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
