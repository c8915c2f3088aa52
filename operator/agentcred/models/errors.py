"""The one error raised for a spec the operator cannot use."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec that no retry can fix: names the field (``spec.vault.auth``) and why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class NotAllowed(ValueError):
    """A request outside what the platform allowed: the backend does not select the
    namespace, or a path, secret, role or ServiceAccount is outside its allow-list.
    Names the field and the backend; nothing is sent to the backend."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class UnsafePattern(SpecError):
    """A CredentialBackend allow-list pattern whose placeholder could let one tenant's
    request match another's (models/patterns.py): the backend is unusable until fixed."""
