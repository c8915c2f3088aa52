"""Issue through the Azure Key Vault backend directly, as the operator would for a task
(shared by the replay's backend tests and the opt-in Lowkey Vault ones)."""

from __future__ import annotations

import asyncio
import datetime
import uuid

from agentcred.backends.azure_key_vault import AzureKeyVaultBackend
from agentcred.backends.base import Identity, Issued, IssueRequest
from agentcred.models.resolved import ResolvedCredential

TTL = datetime.timedelta(minutes=5)


def request(credential_spec: ResolvedCredential) -> IssueRequest:
    """A request for credential ``llm`` of task team-a/claim-4711 (ttl ``TTL``)."""

    async def token_for(audience: str) -> str:
        raise AssertionError("the Azure backend reads with the operator's identity")

    async def secret_value(name: str, key: str) -> str:
        raise AssertionError("the Azure backend reads no Kubernetes Secret")

    identity = Identity("team-a", "agent", "claim-4711", str(uuid.uuid4()), token_for, secret_value)
    return IssueRequest("llm", credential_spec, identity, TTL, f"test-{uuid.uuid4().hex[:8]}")


def issue(backend: AzureKeyVaultBackend, credential_spec: ResolvedCredential) -> Issued:
    return asyncio.run(backend.issue(request(credential_spec)))
