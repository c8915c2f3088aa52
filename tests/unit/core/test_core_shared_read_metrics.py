"""The backend metrics agree with the backend (issue 22): N tasks sharing one static
secret make one backend read per refresh, and ``agentcred_backend_calls_total`` says 1,
not N; the N-1 reads served by that one count apart, in
``agentcred_backend_cache_hits_total`` (services/static_reads.py)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from support.harness import Harness, play
from support.harness.objects import (
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    service_account,
)

TASKS = 5
KIND = "awsSecretsManager"
INTERVAL = 30  # seconds; each task refreshes within 10 % of it after the shared grid point


def calls() -> float:
    labels = {"backend": KIND, "operation": "issue", "outcome": "success"}
    return REGISTRY.get_sample_value("agentcred_backend_calls_total", labels) or 0.0


def hits() -> float:
    labels = {"backend": KIND, "operation": "issue"}
    return REGISTRY.get_sample_value("agentcred_backend_cache_hits_total", labels) or 0.0


def test_tasks_sharing_a_static_secret_count_one_call_and_the_rest_as_hits() -> None:
    objects = [
        namespace(),
        service_account(),
        credential_backend(kind=KIND),
        agent_credential(request=KIND, refreshInterval=f"{INTERVAL}s"),
        *(agent_task(f"t{i}") for i in range(TASKS)),
    ]

    async def scenario(h: Harness) -> None:
        backend = h.backends[KIND]
        backend.take()
        before = calls(), hits()
        for i in range(TASKS):
            await h.start(f"t{i}")
        assert [op for op, _ in backend.take()] == ["issue"]  # what the backend saw
        assert (calls() - before[0], hits() - before[1]) == (1, TASKS - 1)

        for refresh in range(2):
            before = calls(), hits()
            await h.advance((h.next_due() or 0) + 0.1 * INTERVAL + 1)
            assert [h.entry(name=f"t{i}")["renewals"] for i in range(TASKS)] == [
                refresh + 1
            ] * TASKS
            assert [op for op, _ in backend.take()] == ["issue"]
            assert (calls() - before[0], hits() - before[1]) == (1, TASKS - 1)

    play(Harness(objects), scenario)
