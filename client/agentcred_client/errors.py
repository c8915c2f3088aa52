"""What the client raises. Messages carry the operator's words and names, never a
credential value."""

from __future__ import annotations


class AgentTaskError(Exception):
    """Base of the client's errors; ``name`` is the AgentTask's (may be empty)."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.name = name


class TaskFailed(AgentTaskError):
    """The task will not become Active: the operator refused or failed it (``reason``:
    ``NotAllowed``, ``ApprovalDenied``, ``CredentialNotFound``, ... as on its Ready
    condition, see docs/troubleshooting.md), or the API server refused to create it
    (``Forbidden``, ``Invalid``)."""

    def __init__(self, reason: str, message: str, *, name: str = "") -> None:
        super().__init__(f"AgentTask {name or '?'} failed: {reason}: {message}", name=name)
        self.reason = reason
        self.message = message


class TaskTimeout(AgentTaskError):
    """The task did not reach the awaited state in time (Active within ``ready_timeout``,
    not counting time awaiting approval; Revoked within ``revoke_timeout``)."""


class EnvConflict(AgentTaskError, ValueError):
    """Two generated Secrets hold the same key with different values (``key``; the
    values are never shown): read them one by one with ``secret(name)``."""

    def __init__(self, key: str, credentials: tuple[str, str], *, name: str = "") -> None:
        first, second = credentials
        super().__init__(
            f"key {key!r} differs between the Secrets of credentials {first!r} and {second!r}",
            name=name,
        )
        self.key = key
        self.credentials = credentials
