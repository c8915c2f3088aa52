"""The one mapping from hvac's and requests' failures to agentcred's typed errors.

Every Vault call goes through :meth:`Connection.call <agentcred.backends.vault.connection.
Connection.call>`, which raises what :func:`vault_error` returns; nothing else in the
package decides whether a Vault failure is a refusal, a bad spec or a moment's outage.
"""

from __future__ import annotations

import re

import requests
from hvac import exceptions as vault_exc

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
)

MAX_ERROR_TEXT = 300
CREATE_CHILD_HINT = (
    " (tokenSecretRef: the token is used to create a child token per credential, so its"
    " policy must allow 'update' on auth/token/create; it may also have expired)"
)
SESSION_GONE_HINT = " (the credential's token has expired or was revoked: issue a new one)"
RETRYABLE = (
    vault_exc.InternalServerError,
    vault_exc.VaultDown,
    vault_exc.BadGateway,
    vault_exc.RateLimitExceeded,
    vault_exc.VaultNotInitialized,
    vault_exc.PreconditionFailed,
)
_MULTIERROR = re.compile(r"^\d+ errors? occurred:\s*\*\s*")
_MISSING = re.compile(r"unknown role|role not found|role .* does not exist|no such", re.I)


def vault_error(
    exc: Exception, action: str, *, login: bool = False, hint: str = ""
) -> BackendError:
    """The typed error for ``exc``, raised by hvac or requests while doing ``action``.

    Raise the result ``from exc``. Messages quote Vault's own error text (which never
    holds a secret), cut to 300 characters, and never a request body. ``login``: a 400
    on a login (unknown role, SA not bound, bad secret id) is a refusal, not a bad spec.
    """
    text = _error_text(exc)
    said = f": {text}" if text else ""
    if isinstance(exc, vault_exc.Forbidden | vault_exc.Unauthorized):
        return BackendDenied(f"Vault denied {action}{said}{hint}")
    if isinstance(exc, vault_exc.InvalidPath):
        return BackendNotFound(f"Vault found nothing for {action}{said}")
    if isinstance(exc, vault_exc.InvalidRequest):
        if login:
            return BackendDenied(f"Vault refused {action}{said}")
        if _MISSING.search(text):  # engines answer 400 for a role that does not exist
            return BackendNotFound(f"Vault found nothing for {action}{said}")
        return BackendInvalidConfig(f"Vault rejected {action}{said}")
    if isinstance(exc, RETRYABLE):
        return BackendUnavailable(f"Vault could not serve {action} now{said}")
    if isinstance(exc, vault_exc.UnexpectedError):  # a status hvac has no class for
        status = getattr(exc, "status_code", None)
        if status is not None and 400 <= status < 500:  # e.g. 405 unsupported operation
            return BackendInvalidConfig(f"Vault rejected {action} (HTTP {status}){said}")
        return BackendUnavailable(
            f"Vault could not serve {action} now (HTTP {status or '?'}){said}"
        )
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return BackendUnavailable(f"cannot reach Vault for {action}{said}")
    return BackendInvalidConfig(f"cannot do {action}: {type(exc).__name__}{said}")


def _error_text(exc: Exception) -> str:
    if isinstance(exc, vault_exc.VaultError):
        parts = [str(e) for e in exc.errors or [] if e] or [str(exc.args[0] or "")]
    else:
        parts = [str(exc)]
    text = "; ".join(_MULTIERROR.sub("", " ".join(p.split())) for p in parts if p.strip())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."
