"""N tasks sharing one static secret cost one backend read per refresh, not N (counted):
``agentcred_backend_calls_total`` counts the reads that reached Vault, and every other
task's read is a hit of the shared one (``agentcred_backend_cache_hits_total``)."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest

from agentcred_testbed.procs import free_port
from support.credentials import vault_kv
from support.kube import wait_for
from support.operator import operator_env, running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e
TASKS = 100
INTERVAL = 10.0  # the refreshInterval floor: the sharing shows in any window


def backend_reads(port: int) -> tuple[float, float]:
    """The Vault reads made, and the reads served by a shared one."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    made = r'agentcred_backend_calls_total\{backend="vault",operation="issue",outcome="success"\}'
    served = r'agentcred_backend_cache_hits_total\{backend="vault",operation="issue"\}'
    found = [re.search(pattern + r" (\S+)", text) for pattern in (made, served)]
    reads, hits = (float(match.group(1)) if match else 0.0 for match in found)
    return reads, hits


def test_hundred_tasks_on_one_static_secret_read_it_at_most_twice_per_interval(
    scene: Scenario,
    testbed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    value = {"api_key": "shared-key-123456"}
    account = vault_kv(
        scene,
        testbed_env,
        "shared",
        f"agents/{scene.ns}/shared",
        value,
        refreshInterval=f"{int(INTERVAL)}s",
    )
    port = free_port()
    env = {**operator_env(testbed_env), "AGENTCRED_METRICS_PORT": str(port)}
    with running_operator(env, tmp_path / "op.log", "--namespace", scene.ns):
        started = time.monotonic()
        for i in range(TASKS):
            scene.task(f"s{i:03d}", ["shared"], serviceAccountName=account)

        def all_refreshed_once() -> bool:
            items = scene.custom.list_namespaced_custom_object(
                "agentcred.io", "v1alpha1", scene.ns, "agenttasks"
            )["items"]
            return len(items) == TASKS and all(
                (i.get("status") or {}).get("credentials", [{}])[0].get("renewals", 0) >= 1
                for i in items
            )

        wait_for(all_refreshed_once, 150, "every task active and refreshed once", interval=1)
        elapsed = time.monotonic() - started
        reads, hits = backend_reads(port)
    windows = elapsed / INTERVAL + 1
    print(
        f"\nstatic sharing: {TASKS} tasks, {reads:.0f} backend reads in {elapsed:.1f}s "
        f"({reads / windows:.2f} per {INTERVAL:.0f}s interval), {hits:.0f} served shared"
    )
    assert 1 <= reads <= 2 * windows
    # every task read it at start and at least once since: each read a call or a hit
    assert reads + hits >= 2 * TASKS
    assert scene.read_secret("s042-shared") == value
