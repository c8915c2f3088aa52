"""What the AWS backends share: pooled boto3 clients, and the one error mapping.

Both AWS backends (``awsSecretsManager``, ``awsSts``) talk to AWS through boto3, which
is synchronous: every call runs in the backend's :class:`BlockingRunner`, and so does
the creation of a client (it may resolve credentials, e.g. from the instance metadata
service). Clients are made once per (service, region, endpoint, signed or not) and
reused; boto3 clients are thread-safe, the boto3 Session that makes them is not, so making one
holds a lock.

Everything not set in the spec is resolved the way every AWS SDK does it, so an
operator deployed on AWS needs no agentcred-specific settings:

* credentials: environment variables, the IRSA / EKS Pod Identity web identity file,
  the shared config files, an instance profile;
* region: ``spec.<block>.region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the
  config file;
* endpoint: ``spec.<block>.endpoint``, else ``AWS_ENDPOINT_URL_<SERVICE>`` /
  ``AWS_ENDPOINT_URL`` / the config file, else AWS's public endpoint (this is how the
  test suite points the SDK at moto; production code has no test-only switch);
* retries: botocore's (``standard`` mode, 3 attempts, unless ``AWS_RETRY_MODE`` /
  ``AWS_MAX_ATTEMPTS`` say otherwise); the operator backs off further on
  :class:`BackendUnavailable`.

botocore logs request and response bodies (secret values, credentials) at DEBUG:
``agentcred.logs.configure`` keeps the ``botocore`` logger at WARNING.

Failures are mapped to agentcred's typed errors in one function, :func:`aws_error`.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
)
from agentcred.backends.blocking import BlockingRunner
from agentcred.backends.lru import DEFAULT_SIZE, LruCache
from agentcred.backends.pooled import PooledBackend

MAX_ERROR_TEXT = 300
USER_AGENT = "agentcred"
REDACTED = "<redacted>"

NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchEntity", "NoSuchEntityException"})
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidIdentityToken",
        "IDPRejectedClaim",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "DecryptionFailure",  # Secrets Manager: KMS would not decrypt for this caller
    }
)
INVALID_CODES = frozenset(
    {
        "ValidationException",
        "ValidationError",  # the Query APIs' (STS, IAM) spelling
        "InvalidParameterException",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidRequestException",
        "MalformedPolicyDocument",
        "MalformedPolicyDocumentException",
        "PackedPolicyTooLarge",
        "RegionDisabledException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServiceError",
        "InternalServiceErrorException",
        "IDPCommunicationError",  # STS could not reach the token issuer's JWKS: retry
    }
)
NO_CREDENTIALS = (
    "the operator has no AWS credentials for {action} (give it some the standard way: "
    "IRSA or EKS Pod Identity, an instance profile, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY)"
)
_XML_CODE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


def aws_error(exc: Exception, action: str, *, redact: Iterable[str] = ()) -> BackendError:
    """The typed error for ``exc``, raised by boto3/botocore while doing ``action``.

    Messages quote AWS's error code and message (which hold no secret value of ours, but
    may echo a parameter: every string in ``redact`` is replaced), cut to 300 characters.
    Raise the result ``from exc`` only if :func:`_may_chain` allows it (as
    :meth:`AwsClients.call` does): some SDK errors quote what this message leaves out.
    """
    hidden = [s for s in redact if s]
    if isinstance(exc, ClientError):
        return _client_error(exc, action, hidden)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return BackendInvalidConfig(NO_CREDENTIALS.format(action=action))
    if isinstance(exc, CredentialRetrievalError):  # e.g. the metadata service timed out
        provider = exc.kwargs.get("provider", "?")  # not error_msg: it may quote a process
        return BackendUnavailable(
            f"cannot get the operator's AWS credentials ({provider}) for {action}"
        )
    if isinstance(exc, NoRegionError):
        return BackendInvalidConfig(
            f"no AWS region for {action}: set the spec's region, or AWS_REGION for the operator"
        )
    if isinstance(exc, ParamValidationError):
        report = str(exc.kwargs.get("report", ""))
        return BackendInvalidConfig(f"AWS SDK rejected {action}: {_without_values(report)}")
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        said = _clean(str(exc), hidden)
        return BackendUnavailable(f"cannot reach AWS for {action}: {said}")
    if isinstance(exc, BotoCoreError):
        said = _clean(str(exc), hidden)
        return BackendInvalidConfig(f"cannot do {action}: {type(exc).__name__}: {said}")
    if isinstance(exc, ResponseParserError):  # its text quotes the answer: never shown
        return BackendUnavailable(f"AWS's answer to {action} could not be parsed")
    # Not botocore's own (e.g. a parser tripping over an answer that is not AWS's):
    # the type only, since its text may quote the answer.
    return BackendInvalidConfig(f"unexpected answer to {action} ({type(exc).__name__})")


def _client_error(exc: ClientError, action: str, hidden: list[str]) -> BackendError:
    code, status, text = _client_error_parts(exc)
    said = f": {code}" + (f": {_clean(text, hidden)}" if text else "")
    if code in NOT_FOUND_CODES:
        return BackendNotFound(f"AWS found nothing for {action}{said}")
    if code in DENIED_CODES:
        return BackendDenied(f"AWS denied {action}{said}")
    if code in INVALID_CODES:
        return BackendInvalidConfig(f"AWS rejected {action}{said}")
    if code in UNAVAILABLE_CODES or status == 429 or status >= 500:
        return BackendUnavailable(
            f"AWS could not serve {action} now (HTTP {status}){said}",
            retry_after=_retry_after(exc.response),
        )
    if status in (401, 403):
        return BackendDenied(f"AWS denied {action} (HTTP {status}){said}")
    if status == 404:
        return BackendNotFound(f"AWS found nothing for {action} (HTTP {status}){said}")
    return BackendInvalidConfig(f"AWS rejected {action} (HTTP {status or '?'}){said}")


def _client_error_parts(exc: ClientError) -> tuple[str, int, str]:
    """(error code, HTTP status, message) of a ClientError.

    A body the SDK could not parse (an XML error from a JSON-protocol service, as proxies
    and some emulators send) leaves the HTTP status as the code and the raw body as the
    message; the code and message are then taken from the XML.
    """
    response: Mapping[str, Any] = exc.response or {}
    error: Mapping[str, Any] = response.get("Error") or {}
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "")
    text = str(error.get("Message") or "")
    try:
        status = int(meta.get("HTTPStatusCode") or 0)
    except (TypeError, ValueError):
        status = 0
    if text.lstrip().startswith("<"):
        xml_code, xml_message = _XML_CODE.search(text), _XML_MESSAGE.search(text)
        if xml_code and (not code or code.isdigit()):
            code = html.unescape(xml_code.group(1).strip())
        text = html.unescape(xml_message.group(1)) if xml_message else ""
    return code or (str(status) if status else "UnknownError"), status, text


def _retry_after(response: Mapping[str, Any] | None) -> float | None:
    headers = ((response or {}).get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    try:
        return max(0.0, float(headers["retry-after"]))
    except (KeyError, TypeError, ValueError):
        return None


def _without_values(report: str) -> str:
    """botocore's parameter report, minus the values it quotes (they may be secret)."""
    lines = []
    for line in report.splitlines():
        head, sep, _ = line.partition(", value: ")
        lines.append(f"{head} (value not shown)" if sep else line)
    return _clean("; ".join(line.strip() for line in lines if line.strip()), [])


def _clean(text: str, hidden: list[str]) -> str:
    for value in hidden:
        text = text.replace(value, REDACTED)
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


def _may_chain(exc: BaseException, hidden: Iterable[str]) -> bool:
    """True if ``exc`` may be kept as the typed error's cause (it shows no value)."""
    if not isinstance(exc, ClientError | BotoCoreError):
        return False  # a parser's error quotes the answer; anything unforeseen may too
    if isinstance(exc, ParamValidationError | CredentialRetrievalError):
        return False  # they quote parameter values, a credential provider's output
    shown = f"{exc} {exc!r}"
    return not any(value and value in shown for value in hidden)


def check_endpoint(endpoint: str | None, field_name: str) -> None:
    """A pure check of an endpoint override (``validate``)."""
    if endpoint is None:
        return
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise BackendInvalidConfig(f"{field_name} must be an http:// or https:// URL")
    if url.username or url.password:
        raise BackendInvalidConfig(f"{field_name} must not hold credentials")


@dataclass(frozen=True)
class Target:
    """Where a call goes: one cached client per distinct target."""

    service: str
    region: str | None  # None: the SDK's default chain
    endpoint: str | None  # None: the SDK's standard resolution (AWS_ENDPOINT_URL, ...)
    unsigned: bool = False  # no credentials at all (AssumeRoleWithWebIdentity)


class AwsClients:
    """The boto3 clients of one backend, and how its calls run (in its pool, errors mapped)."""

    def __init__(
        self, runner: BlockingRunner, *, timeout: float, cache_size: int = DEFAULT_SIZE
    ) -> None:
        self._runner = runner
        self._timeout = timeout
        self._lock = threading.Lock()
        self._boto3: Any = None  # the boto3 Session that makes clients (not a login)
        self._clients: LruCache[Target, Any] = LruCache(cache_size)

    async def call(
        self,
        action: str,
        target: Target,
        operation: str,
        *,
        redact: Iterable[str] = (),
        **params: Any,
    ) -> dict[str, Any]:
        """Run ``client.<operation>(**params)`` in the pool; map its failure to a typed error.

        ``redact``: values sent with the call that no message may show (a token).
        """
        result: dict[str, Any] = await self._run(
            action, tuple(redact), self._invoke, target, operation, params
        )
        return result

    async def prepare(self, action: str, target: Target) -> None:
        """Make the client of ``target`` now: its region and endpoint settings resolve."""
        await self._run(action, (), self._client, target)

    def close(self) -> None:
        for client in self._clients.drain():
            client.close()

    async def _run(
        self, action: str, hidden: tuple[str, ...], fn: Callable[..., Any], *args: Any
    ) -> Any:
        """Run ``fn`` in the pool. Every failure becomes a typed error, chained to the SDK's
        error only when that cannot hold a value: not when it quotes a redacted value, nor
        when it is not one of botocore's own errors (a response parser's error quotes the
        response, which may hold the secret; so may anything unforeseen).
        """
        try:
            return await self._runner.run(fn, *args)
        except Exception as exc:
            mapped = aws_error(exc, action, redact=hidden)
            if _may_chain(exc, hidden):
                raise mapped from exc
            unchained = mapped
        raise unchained  # outside ``except``: no __context__ either

    # -- in the pool -------------------------------------------------------------------

    def _invoke(self, target: Target, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        client = self._client(target)
        result: dict[str, Any] = getattr(client, operation)(**params)
        return result

    def _client(self, target: Target) -> Any:
        with self._lock:
            if self._boto3 is None:
                self._boto3 = boto3.session.Session()
            maker = self._boto3
        return self._clients.get_or_make(
            target,
            lambda: maker.client(
                target.service,
                region_name=target.region,
                endpoint_url=target.endpoint,
                config=self._config(target),
            ),
        )

    def _config(self, target: Target) -> Config:
        settings: dict[str, Any] = {
            "connect_timeout": self._timeout,
            "read_timeout": self._timeout,
            "max_pool_connections": self._runner.concurrency,
            "user_agent_extra": USER_AGENT,
        }
        if target.unsigned:
            settings["signature_version"] = UNSIGNED
        return Config(**settings)


class AwsBackend(PooledBackend):
    """What both AWS backends share: their pool, their boto3 clients, and closing both."""

    def _make_clients(self, cache_size: int) -> None:
        self._clients = AwsClients(self._runner, timeout=self._timeout, cache_size=cache_size)

    async def aclose(self) -> None:
        """Release the pooled connections, and the thread pool unless it was given."""
        self._clients.close()
        self._close_runner()
