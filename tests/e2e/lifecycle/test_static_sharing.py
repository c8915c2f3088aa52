"""N tasks sharing one static secret cost one backend read per refresh, not N (counted)."""

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


def backend_reads(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = (
        r'agentcred_backend_calls_total\{backend="vault",operation="issue",'
        r'outcome="success"\} (\S+)'
    )
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


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
        reads = backend_reads(port)
    windows = elapsed / INTERVAL + 1
    print(
        f"\nstatic sharing: {TASKS} tasks, {reads:.0f} backend reads in {elapsed:.1f}s "
        f"({reads / windows:.2f} per {INTERVAL:.0f}s interval)"
    )
    assert 1 <= reads <= 2 * windows
    assert scene.read_secret("s042-shared") == value
