"""The test suites' own hygiene helpers: a node test reads only the logs of the pod
instance it looks at, and the end-of-run check sees a process a test left running."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

from support.hygiene import live_children
from support.node import current_log


def _pod(name: str, uid: str, restarts: int) -> SimpleNamespace:
    return SimpleNamespace(
        metadata=SimpleNamespace(namespace="agentcred-system", name=name, uid=uid),
        status=SimpleNamespace(
            container_statuses=[SimpleNamespace(name="operator", restart_count=restarts)]
        ),
    )


def _log(root: Path, pod: str, uid: str, restart: int, text: str) -> None:
    folder = root / f"agentcred-system_{pod}_{uid}" / "operator"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{restart}.log").write_text(text)


def test_a_pods_current_log_leaves_out_earlier_pods_and_runs_of_its_name(tmp_path: Path) -> None:
    # An earlier `make dev NODE=1` pod of the same name led; this one's first container
    # too (the node stopped and started again); the running container stands by.
    _log(tmp_path, "agentcred-operator-abc-x1", "old-uid", 0, "acquired leadership\n")
    _log(tmp_path, "agentcred-operator-abc-x1", "new-uid", 0, "acquired leadership\n")
    _log(tmp_path, "agentcred-operator-abc-x1", "new-uid", 1, "standing by\n")
    env = {"NODE_POD_LOGS": str(tmp_path)}

    text = current_log(env, _pod("agentcred-operator-abc-x1", "new-uid", restarts=1))

    assert text == "standing by\n"
    assert current_log(env, _pod("agentcred-operator-abc-x1", "other", restarts=0)) == ""


def test_a_child_process_left_running_is_named_until_it_is_stopped() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert any(line.startswith(f"{child.pid} sleep 60") for line in live_children(set()))
        assert not [line for line in live_children({child.pid}) if line.startswith(f"{child.pid} ")]
    finally:
        child.kill()
        child.wait()
    assert not [line for line in live_children(set()) if line.startswith(f"{child.pid} ")]
