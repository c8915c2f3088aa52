"""The one error raised for a spec the operator cannot use."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec that no retry can fix: names the field (``spec.vault.auth``) and why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
