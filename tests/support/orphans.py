"""Make an orphan the way a crash does: a task issued by an operator that was then killed,
and the task deleted behind its back (finalizer stripped), leaving a live lease."""

from __future__ import annotations

from pathlib import Path

from agentcred.models.api_names import GROUP, VERSION, Plural
from support.kube import wait_for
from support.operator import OperatorProcess, operator_env, running_operator
from support.scenario import Scenario


def orphan_a_task(
    scene: Scenario, testbed_env: dict[str, str], log: Path, account: str, name: str = "orphaned"
) -> tuple[dict[str, str], str, OperatorProcess]:
    """The orphaned credential's values, the task's uid, and the killed operator."""
    env = operator_env(testbed_env)
    with running_operator(env, log, "--namespace", scene.ns) as first:
        scene.task(name, ["db"], serviceAccountName=account)
        scene.wait_phase(name, "Active")
        data = scene.read_secret(f"{name}-db")
        assert data is not None
        uid = str((scene.get_task(name) or {})["metadata"]["uid"])
        first.kill()
    scene.custom.patch_namespaced_custom_object(
        GROUP, VERSION, scene.ns, Plural.TASKS, name, {"metadata": {"finalizers": None}}
    )
    scene.delete_task(name)
    wait_for(lambda: scene.get_task(name) is None, 30, "task gone")
    return data, uid, first
