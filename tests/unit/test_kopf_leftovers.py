"""Kopf stores nothing on an AgentTask, and what older operators left is named exactly.

* Only an event handler is registered for AgentTasks: Kopf adds a finalizer only for
  changing handlers (on.create/update/delete/resume) or daemons and timers (spawning),
  and writes diff-base and progress annotations only for changing handlers
  (kopf/_core/reactor/processing.py).
* ``KOPF_TASK_ANNOTATIONS`` are the keys Kopf's own storages wrote for the old handler
  ids (models/api_names.py), so the upgrade removes them and nothing of ours.
* Kopf's finalizer setting is a name no object carries: Kopf never releases the old
  finalizer itself before our code finalized the task.
"""

from __future__ import annotations

import kopf

import agentcred.handlers.tasks  # noqa: F401 - registers the handlers
from agentcred.models.api_names import (
    FINALIZER,
    GROUP,
    KOPF_FINALIZER,
    KOPF_PREFIX,
    KOPF_TASK_ANNOTATIONS,
    VERSION,
    Annotation,
    Plural,
)
from agentcred.services.kopf_leftovers import leftovers, version_number
from agentcred.services.task_view import TaskView
from support.harness.objects import agent_task

# The ids of the AgentTask handlers before issue 22 (function name / field), as Kopf made them.
OLD_HANDLER_IDS = [
    "resume",
    "start",
    "complete/spec.completed",
    "complete/spec.failureReason",
    "identity_changed/spec.serviceAccountName",
    "identity_changed/spec.credentials",
    "edited/spec",
    "finalize",
]


def test_only_an_event_handler_is_registered_for_agenttasks() -> None:
    registry = kopf.get_default_registry()
    tasks = kopf.Resource(GROUP, VERSION, Plural.TASKS.value)
    assert registry._watching.has_handlers(resource=tasks)
    assert not registry._changing.has_handlers(resource=tasks)
    assert not registry._spawning.has_handlers(resource=tasks)


def test_the_annotations_are_the_keys_kopfs_storages_write() -> None:
    progress = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    diffbase = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)
    kopfs = {key for handler in OLD_HANDLER_IDS for key in progress.make_keys(handler)}
    kopfs |= set(diffbase.make_keys(diffbase.key))
    kopfs |= {f"{KOPF_PREFIX}/{progress.touch_key}", f"{KOPF_PREFIX}/kopf-managed"}
    assert set(KOPF_TASK_ANNOTATIONS) == kopfs
    assert not set(KOPF_TASK_ANNOTATIONS) & {a.value for a in Annotation}  # none of ours


def test_kopfs_finalizer_is_not_the_old_one() -> None:
    assert KOPF_FINALIZER != FINALIZER


def view(body: dict[str, object]) -> TaskView:
    body["metadata"]["uid"] = "u1"  # type: ignore[index]
    return TaskView.from_body(body)


def test_the_patch_removes_only_the_old_finalizer_and_kopfs_annotations() -> None:
    body = agent_task(
        finalizers=["other.io/keep", FINALIZER],
        annotations={KOPF_TASK_ANNOTATIONS[0]: "{}", Annotation.CORRELATION_ID: "s"},
    )
    assert leftovers(view(body), FINALIZER) == {
        "finalizers": ["other.io/keep"],
        "annotations": {KOPF_TASK_ANNOTATIONS[0]: None},
    }
    only = agent_task(finalizers=[FINALIZER])
    assert leftovers(view(only), FINALIZER) == {"finalizers": None}
    assert leftovers(view(agent_task()), FINALIZER) is None


def test_resource_versions_are_compared_only_as_integers() -> None:
    assert version_number("123") == 123
    assert version_number("abc") is None and version_number(None) is None
    assert version_number("-1") is None
