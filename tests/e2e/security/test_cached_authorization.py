"""The read cache behind resolve (issue 22) against the real API server: a platform edit
that withdraws a tenant's namespace reaches the operator through the watch within
seconds, and the tenant's next task gets nothing (docs/security.md, "Decided on the
platform's current objects"; the in-process cases: tests/unit/core/test_core_read_cache.py).
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from test_tenant_attacks import tenant_create

from agentcred.models.api_names import GROUP, VERSION, Label, Plural, Reason
from support.credentials import vault_database
from support.kube import wait_for
from support.scenario import Scenario
from support.tenant import grant_impersonation

pytestmark = pytest.mark.e2e
# From the platform's edit to the operator having it: watch latency plus the backend
# handler's own work, on a loaded 2-core machine (it takes well under a second when quiet).
BOUND_SECONDS = 10.0


def observed_generation(scene: Scenario, backend: str) -> int | None:
    body = scene.custom.get_cluster_custom_object(GROUP, VERSION, Plural.BACKENDS, backend)
    return (body.get("status") or {}).get("observedGeneration")


def test_a_backend_edited_to_drop_the_namespace_refuses_the_next_task_within_seconds(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    account = vault_database(scenario, testbed_env)
    scenario.issue("before", "db", serviceAccountName=account)  # the cache holds the backend
    grant_impersonation(scenario.api, scenario.ns, "alice", [account])
    backend = f"{scenario.ns}-vault"
    nobody = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nobody"}}}
    edited = scenario.custom.patch_cluster_custom_object(
        GROUP, VERSION, Plural.BACKENDS, backend, {"spec": nobody}
    )
    started = time.monotonic()
    # Kopf runs the event handler (the cache) before the update handler that writes
    # observedGeneration: once it shows the edit, the cache has it.
    generation = edited["metadata"]["generation"]
    wait_for(
        lambda: observed_generation(scenario, backend) == generation,
        BOUND_SECONDS,
        "the operator to see the platform's edit",
    )
    assert time.monotonic() - started < BOUND_SECONDS
    tenant_create(
        tenant,
        scenario.ns,
        "AgentTask",
        {"serviceAccountName": account, "credentials": [{"name": "db"}]},
        name="after",
    )
    status = scenario.wait_phase("after", "Failed")
    assert status["reason"] == Reason.NOT_ALLOWED, status
    assert scenario.read_secret("after-db") is None
    # nothing written for it: no lease record (so no login recorded), no Secret
    records = scenario.core.list_namespaced_secret(
        testbed_env["AGENTCRED_NAMESPACE"],
        label_selector=f"{Label.TASK}=after,{Label.TASK_NAMESPACE}={scenario.ns}",
    ).items
    assert records == []
