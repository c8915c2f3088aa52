"""The upgrade from an operator that drove tasks with Kopf's handlers (before issue 22):
tasks carrying its finalizer and Kopf's annotations, live or being deleted, when the
new operator starts (services/kopf_leftovers.py; in-process: test_core_task_events.py).

The old operator's state is made the way it left it: a task issued, the operator
stopped, the finalizer and the annotations put back on the task."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcred.models.api_names import FINALIZER, GROUP, KOPF_TASK_ANNOTATIONS, VERSION, Plural
from support import postgres
from support.credentials import vault_database
from support.kube import wait_for
from support.operator import operator_env, running_operator
from support.scenario import Scenario

pytestmark = pytest.mark.e2e
LEFT = {KOPF_TASK_ANNOTATIONS[0]: '{"spec": {}}', f"{GROUP}/kopf-managed": "yes"}


def test_the_old_finalizer_is_honoured_then_removed_and_kopfs_annotations_go(
    scene: Scenario, testbed_env: dict[str, str], tmp_path: Path
) -> None:
    account = vault_database(scene, testbed_env)
    env = operator_env(testbed_env)
    with running_operator(env, tmp_path / "first.log", "--namespace", scene.ns) as first:
        _, live = scene.issue("live", "db", serviceAccountName=account)
        _, doomed = scene.issue("doomed", "db", serviceAccountName=account)
        first.kill()
    for name in ("live", "doomed"):  # as the old operator left them
        scene.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            scene.ns,
            Plural.TASKS,
            name,
            {"metadata": {"finalizers": [FINALIZER], "annotations": LEFT}},
        )
    scene.delete_task("doomed")  # held by the old finalizer: Terminating
    held = scene.get_task("doomed") or {}
    assert held["metadata"].get("deletionTimestamp")

    with running_operator(env, tmp_path / "second.log", "--namespace", scene.ns):
        # Being deleted: finalized (its lease revoked), then the finalizer released.
        wait_for(lambda: scene.get_task("doomed") is None, 30, "the old finalizer released")
        assert not postgres.can_login(testbed_env, doomed["username"], doomed["password"])
        # Live: the finalizer and Kopf's annotations removed; it runs on.
        wait_for(
            lambda: not (scene.get_task("live") or {})["metadata"].get("finalizers"),
            30,
            "the old finalizer removed from the live task",
        )
        annotations = (scene.get_task("live") or {})["metadata"].get("annotations") or {}
        assert not set(annotations) & set(KOPF_TASK_ANNOTATIONS)
        assert scene.status("live")["phase"] == "Active"
        assert postgres.can_login(testbed_env, live["username"], live["password"])
        scene.delete_task("live")  # now nothing holds it
        assert scene.get_task("live") is None
        postgres.wait_refused(testbed_env, live, 30, "revoked on its DELETED event")
