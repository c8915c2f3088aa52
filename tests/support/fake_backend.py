"""A backend that talks to nobody, for tests of the registry and the wrapper."""

from __future__ import annotations

import datetime

from agentcred.backends.base import (
    BackendInvalidConfig,
    Capabilities,
    Issued,
    IssueRequest,
    Lease,
    Renewed,
)
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential

KIND = "fake"


class FakeBackend:
    """Issues ``{"value": "fake"}``; records what it was asked and how often it was closed."""

    kind = KIND

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.closed = 0
        self.renewed: list[tuple[Lease, datetime.timedelta]] = []
        self.revoked: list[Lease] = []

    @classmethod
    def from_settings(cls, settings: BackendSettings) -> FakeBackend:
        return cls(settings)

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return Capabilities(renewable=True, revocable=True, static=False)

    def validate(self, spec: ResolvedCredential) -> None:
        return None

    async def check(self, spec: ResolvedCredential) -> None:
        return None

    async def issue(self, request: IssueRequest) -> Issued:
        if self.closed:
            raise BackendInvalidConfig("closed")
        now = datetime.datetime.now(datetime.UTC)
        return Issued(
            data={"value": "fake"},
            lease_id="fake/1",
            issued_at=now,
            expires_at=now + request.ttl,
            renewable=True,
        )

    async def renew(self, lease: Lease, ttl: datetime.timedelta) -> Renewed:
        self.renewed.append((lease, ttl))
        return Renewed(expires_at=datetime.datetime.now(datetime.UTC) + ttl, capped=False)

    async def revoke(self, lease: Lease) -> None:
        self.revoked.append(lease)

    async def aclose(self) -> None:
        self.closed += 1
