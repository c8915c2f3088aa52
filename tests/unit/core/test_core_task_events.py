"""AgentTasks driven by their watch events (services/task_events.py): what each event
means, decided from state; the event's body as the read; retries through the scheduler;
deletion without a finalizer; the upgrade from Kopf's finalizer and annotations; the
sweep after a deletion missed while no operator ran. Exact API and backend calls."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentcred.backends.base import BackendUnavailable
from agentcred.models.api_names import FINALIZER, Annotation, Plural, Reason
from agentcred.models.errors import NotAllowed
from agentcred.services import lifecycle, sweep
from agentcred.services.task_events import Action, Known, decide
from agentcred.services.task_view import TaskView
from support.harness import Harness, play
from support.harness.calls import (
    CREATE_SECRET,
    DELETE_SECRET,
    EVENT,
    GET_SECRET,
    GET_TASK,
    LIST_SECRETS,
    LIST_TASKS,
    PATCH_STATUS,
    RESOLVE,
    TOKEN,
)
from support.harness.objects import NAMESPACE, agent_task, world
from support.harness.store import Body

PATCH_TASK = ("patch", Plural.TASKS, "")  # metadata: the old finalizer and annotations
ISSUE = [*RESOLVE, GET_SECRET, TOKEN, CREATE_SECRET, CREATE_SECRET, EVENT, PATCH_STATUS]
CLEANUP = [DELETE_SECRET, GET_SECRET, EVENT, DELETE_SECRET]  # as test_core_end.py
KOPF_ANNOTATIONS = {
    "agentcred.io/last-handled-configuration": "{}",
    "agentcred.io/kopf-managed": "yes",
}
ACTIVE_ENTRY = {
    "name": "db",
    "state": "Issued",
    "secretName": "t1-db",
    "leaseId": "lease-9",
    "expiresAt": "2026-06-01T13:00:00Z",
    "renewAt": "2026-06-01T12:40:00Z",
}
IDENTITY = {"serviceAccountName": "agent", "credentials": [{"name": "db"}]}


# -- decide: a pure table --------------------------------------------------------------

SEEN = Known(seen=True)  # an event of the task was handled by this process before


@dataclass(frozen=True)
class Row:
    id: str
    event: str | None
    expected: Action
    status: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    known: Known = SEEN
    leftovers: bool = False


ACTIVE = {"phase": "Active", "credentials": [ACTIVE_ENTRY]}
ENDED = {"phase": "Succeeded", "credentials": [ACTIVE_ENTRY]}
ROWS = [
    Row("listed at start: resume", None, Action.RESUME, ACTIVE, known=Known()),
    Row(
        "first seen on a change (its listing's action failed): resume",
        "MODIFIED",
        Action.RESUME,
        ACTIVE,
        known=Known(),
    ),
    Row(
        "listed again after a 410, nothing changed: nothing",
        None,
        Action.NOTHING,
        ACTIVE,
        known=SEEN,
    ),
    Row("added, never started: start", "ADDED", Action.START),
    Row(
        "not started, its retry scheduled: nothing",
        "MODIFIED",
        Action.NOTHING,
        known=Known(seen=True, retrying=True),
    ),
    Row(
        "active, unchanged (our own patch's event): nothing",
        "MODIFIED",
        Action.NOTHING,
        ACTIVE,
        known=SEEN,
    ),
    Row(
        "older than our last write: skip",
        "MODIFIED",
        Action.SKIP,
        ACTIVE,
        meta={"resourceVersion": "5"},
        known=Known(seen=True, written=6),
    ),
    Row(
        "as new as our last write: decided",
        "MODIFIED",
        Action.COMPLETE,
        ACTIVE,
        {"completed": True},
        {"resourceVersion": "6"},
        Known(seen=True, written=6),
    ),
    Row(
        "not an integer version: decided (read again under the lock)",
        "MODIFIED",
        Action.COMPLETE,
        ACTIVE,
        {"completed": True},
        {"resourceVersion": "x7"},
        Known(seen=True, written=6),
    ),
    Row("completed: complete", "MODIFIED", Action.COMPLETE, ACTIVE, {"completed": True}),
    Row(
        "completed while its retry is scheduled: complete now",
        "MODIFIED",
        Action.COMPLETE,
        {"phase": "Pending"},
        {"completed": True},
        known=Known(seen=True, retrying=True),
    ),
    Row(
        "a failure reported: complete",
        "MODIFIED",
        Action.COMPLETE,
        ACTIVE,
        {"failureReason": "no rows"},
    ),
    Row("ended, not cleaned up here: cleanup", "MODIFIED", Action.CLEANUP, ENDED),
    Row(
        "ended, cleaned up here: nothing",
        "MODIFIED",
        Action.NOTHING,
        ENDED,
        known=Known(seen=True, cleaned=True),
    ),
    Row(
        "ended, its cleanup's retry scheduled: nothing",
        "MODIFIED",
        Action.NOTHING,
        ENDED,
        known=Known(seen=True, retrying=True),
    ),
    Row(
        "another identity than recorded: identity",
        "MODIFIED",
        Action.IDENTITY,
        {**ACTIVE, "identity": {**IDENTITY, "serviceAccountName": "other"}},
    ),
    Row(
        "edited after its approval: approval",
        "MODIFIED",
        Action.APPROVAL,
        {**ACTIVE, "approval": {"decision": "Approved", "generation": 1}},
        meta={"generation": 2},
    ),
    Row(
        "a renewal asked: renew",
        "MODIFIED",
        Action.RENEW,
        ACTIVE,
        meta={"annotations": {Annotation.RENEW_REQUESTED_AT: "now"}},
    ),
    Row(
        "a renewal asked, honoured here: nothing",
        "MODIFIED",
        Action.NOTHING,
        ACTIVE,
        meta={"annotations": {Annotation.RENEW_REQUESTED_AT: "now"}},
        known=Known(seen=True, renewed="now"),
    ),
    Row("deleted: gone", "DELETED", Action.GONE, ACTIVE, known=Known(cleaned=True)),
    Row(
        "being deleted: finalize",
        "MODIFIED",
        Action.FINALIZE,
        ACTIVE,
        meta={"deletionTimestamp": "2026-06-01T12:00:00Z", "finalizers": ["other.io/x"]},
    ),
    Row(
        "being deleted, cleaned up here: nothing",
        "MODIFIED",
        Action.NOTHING,
        ENDED,
        meta={"deletionTimestamp": "2026-06-01T12:00:00Z", "finalizers": ["other.io/x"]},
        known=Known(cleaned=True),
    ),
    Row(
        "being deleted with the old finalizer: finalize, then release",
        "MODIFIED",
        Action.FINALIZE,
        ACTIVE,
        meta={"deletionTimestamp": "2026-06-01T12:00:00Z", "finalizers": [FINALIZER]},
        leftovers=True,
    ),
    Row(
        "the old finalizer, cleaned up here: release it",
        "MODIFIED",
        Action.FINALIZE,
        ENDED,
        meta={"deletionTimestamp": "2026-06-01T12:00:00Z", "finalizers": [FINALIZER]},
        known=Known(cleaned=True),
        leftovers=True,
    ),
    Row(
        "live with the old finalizer, listed: remove it, resume",
        None,
        Action.RESUME,
        ACTIVE,
        meta={"finalizers": [FINALIZER]},
        known=Known(),
        leftovers=True,
    ),
    Row(
        "live with Kopf's annotations only: remove them",
        "MODIFIED",
        Action.NOTHING,
        ACTIVE,
        meta={"annotations": KOPF_ANNOTATIONS},
        known=SEEN,
        leftovers=True,
    ),
]


def body_of(row: Row) -> Body:
    body = agent_task(status={**row.status} if row.status else None)
    body["spec"].update(row.spec)
    meta = body["metadata"]
    meta.update({"uid": "u1", "resourceVersion": "6", "generation": 1, **row.meta})
    if row.status.get("phase") and "identity" not in row.status:
        body["status"]["identity"] = IDENTITY
    return body


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_what_an_event_means_is_decided_from_state(row: Row) -> None:
    decision = decide(row.event, TaskView.from_body(body_of(row)), row.known, FINALIZER)
    assert (decision.action, decision.leftovers) == (row.expected, row.leftovers)


# -- the event's body is the read --------------------------------------------------------


def test_an_event_older_than_our_last_write_costs_nothing() -> None:
    async def scenario(h: Harness) -> None:
        added = copy.deepcopy(h.body())
        assert await h.event("ADDED") is Action.START
        h.take()
        h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"spec": {"completed": True}})
        stale = {**added, "spec": {**added["spec"], "completed": True}}  # before our patch
        assert await h.deliver_task("MODIFIED", stale) is Action.SKIP
        assert h.take() == []
        assert await h.event("MODIFIED") is Action.COMPLETE  # the newer event decides
        assert h.status()["phase"] == "Succeeded"

    play(Harness(world()), scenario)


def test_the_first_listing_resumes_and_a_relisting_costs_nothing() -> None:
    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        h.restart()  # a new process: the watch lists the task (type None)
        h.take()
        h.backends["vault"].take()
        assert await h.event(None) is Action.RESUME
        assert h.take() == [] and h.next_due() is not None  # its schedule from its status
        assert await h.event(None) is Action.NOTHING  # Kopf re-listed after a 410
        assert h.take() == [] and h.backends["vault"].take() == []

    play(Harness(world()), scenario)


def test_each_event_of_our_own_writes_is_nothing() -> None:
    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        h.take()
        assert await h.event("MODIFIED") is Action.NOTHING  # the Active patch's event
        assert h.take() == []

    play(Harness(world()), scenario)


def test_an_identity_changed_on_a_running_task_ends_it_at_once() -> None:
    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        h.take()
        h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"spec": {"serviceAccountName": "other"}})
        assert await h.event("MODIFIED") is Action.IDENTITY
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Failed", Reason.IDENTITY_CHANGED)
        assert h.secret_data(NAMESPACE, "t1-db") is None and h.record_keys() == []
        assert GET_TASK not in h.take()

    play(Harness(world()), scenario)


def test_a_renewal_request_is_honoured_from_the_event() -> None:
    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        h.take()
        h.backends["vault"].take()
        h.server.edit(
            Plural.TASKS,
            NAMESPACE,
            "t1",
            {"metadata": {"annotations": {Annotation.RENEW_REQUESTED_AT: "2026-06-01T12:01Z"}}},
        )
        assert await h.event("MODIFIED") is Action.RENEW
        assert h.backends["vault"].take() == [("renew", "lease-2")]
        assert GET_TASK not in h.take()
        assert h.status()["renewRequestedAt"] == "2026-06-01T12:01Z"
        assert await h.event("MODIFIED") is Action.NOTHING  # honoured: once per value

    play(Harness(world()), scenario)


# -- retries are ours ----------------------------------------------------------------------


def test_a_temporary_failure_is_retried_by_the_scheduler_after_its_backoff() -> None:
    async def scenario(h: Harness) -> None:
        vault = h.backends["vault"]
        vault.fail("issue", BackendUnavailable("connection refused", retry_after=7.0))
        assert await h.event("ADDED") is Action.START
        uid = h.body()["metadata"]["uid"]
        assert h.ready() == ("False", "BackendUnavailable")
        assert h.next_due() == pytest.approx(7.0)  # the error's retry_after
        h.take()
        # Events meanwhile (our own Pending patch's) do not issue ahead of the backoff.
        assert await h.event("MODIFIED") is Action.NOTHING
        assert h.take() == []
        await h.advance(7.0)
        assert h.status()["phase"] == "Active"
        calls = h.take()
        assert calls[0] == GET_TASK  # the retry runs long after the event: read once
        assert calls.count(PATCH_STATUS) == 1  # Active with its entry, one patch
        assert uid not in h.deps.redo and h.scheduler.attempts(uid) == 0
        assert h.next_due() is not None  # its renewal, from the status just written

    play(Harness(world()), scenario)


def test_an_api_error_during_an_action_is_retried_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"spec": {"completed": True}})
        h.server.fail("delete", "secrets", 503)  # the generated Secret's delete
        assert await h.event("MODIFIED") is Action.COMPLETE  # no exception into Kopf
        uid = h.body()["metadata"]["uid"]
        assert uid in h.deps.redo and h.next_due() is not None
        await h.advance(h.next_due() or 0)
        assert h.status()["phase"] == "Succeeded"
        assert h.secret_data(NAMESPACE, "t1-db") is None and h.record_keys() == []
        assert uid not in h.deps.redo

    with caplog.at_level(logging.WARNING, logger="agentcred.tasks"):
        play(Harness(world()), scenario)
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_a_bug_is_logged_with_its_trace_and_retried_and_a_permanent_error_is_reported(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[Exception] = [RuntimeError("a bug"), NotAllowed("spec.x", "not allowed")]
    real = lifecycle.start

    async def failing(*args: Any, **kwargs: Any) -> None:
        if errors:
            raise errors.pop(0)
        await real(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "start", failing)

    async def scenario(h: Harness) -> None:
        assert await h.event("ADDED") is Action.START  # the bug: retried
        uid = h.body()["metadata"]["uid"]
        assert uid in h.deps.redo and h.scheduler.attempts(uid) == 1
        h.deps.redo.discard(uid)
        h.scheduler.forget(uid)
        assert await h.event("MODIFIED") is Action.START  # permanent: not retried
        assert h.next_due() is None

    with caplog.at_level(logging.WARNING, logger="agentcred.tasks"):
        play(Harness(world()), scenario)
    messages = [(r.levelno, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert any(lvl == logging.ERROR and "retrying" in m and trace for lvl, m, trace in messages)
    assert any(lvl == logging.ERROR and "permanent" in m for lvl, m, _ in messages)


# -- deletion without a finalizer ----------------------------------------------------------


def test_a_deleted_task_whose_revocation_fails_is_retried_from_what_its_event_showed() -> None:
    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        vault = h.backends["vault"]
        vault.take()
        vault.fail("revoke", BackendUnavailable("connection refused"))
        h.take()
        await h.delete()  # gone at once; its DELETED event's revocation fails for now
        assert h.task() is None
        assert h.secret_data(NAMESPACE, "t1-db") is None  # deleted, not left to the GC
        assert len(h.server.of("secrets")) == 1  # the lease record stays for the retry
        assert h.next_due() is not None
        h.take()
        await h.advance(h.next_due() or 0)
        assert vault.take() == [("revoke", "accessor-1"), ("revoke", "accessor-1")]
        assert not h.server.of("secrets")
        calls = h.take()
        # No read of the task (its DELETED event is final for its uid), ..., TaskEnded
        assert GET_TASK not in calls and calls[-1] == EVENT
        assert h.next_due() is None and not h.deps.departed and not h.deps.versions

    play(Harness(world()), scenario)


def test_a_task_deleted_while_no_operator_ran_is_revoked_by_the_first_sweep() -> None:
    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        h.restart()  # the operator stops; the task is deleted; its DELETED event is lost
        h.server.remove(Plural.TASKS, NAMESPACE, "t1")
        assert h.task() is None
        h.take()
        h.backends["vault"].take()
        result = await h.sweep()
        assert (result.found, result.revoked) == (1, 1)
        assert h.backends["vault"].take() == [("revoke", "accessor-1")]
        assert h.take()[:3] == [LIST_SECRETS, GET_TASK, GET_SECRET]  # records, 404, read
        assert all(s["metadata"]["namespace"] != "agentcred-system" for s in h.server.of("secrets"))

    play(Harness(world()), scenario)


def test_the_first_sweep_runs_soon_after_start() -> None:
    async def scenario(h: Harness) -> None:
        waits: list[float] = []

        async def stopped(seconds: float) -> bool:
            waits.append(seconds)
            return len(waits) > 2

        await sweep.run_forever(h.deps, stopped)
        assert waits == [sweep.FIRST_SWEEP, 60.0, 60.0]
        assert h.take().count(LIST_TASKS) == 2  # two sweeps ran

    play(Harness(world()), scenario)


# -- the upgrade from Kopf's finalizer and annotations ---------------------------------------


def old_task(**kwargs: Any) -> Body:
    return agent_task(
        finalizers=["other.io/keep", FINALIZER],
        annotations={**KOPF_ANNOTATIONS, Annotation.CORRELATION_ID: "s-1"},
        **kwargs,
    )


def test_a_live_task_from_before_loses_the_finalizer_and_kopfs_annotations_in_one_patch() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()  # issued by the old operator (its status as it left it)
        h.restart()  # the upgraded operator lists it
        h.take()
        h.backends["vault"].take()
        assert await h.event(None) is Action.RESUME
        assert h.take() == [PATCH_TASK]  # one PATCH; the schedule from its status, no call
        meta = h.body()["metadata"]
        assert meta["finalizers"] == ["other.io/keep"]  # someone else's stays
        assert meta["annotations"] == {Annotation.CORRELATION_ID: "s-1"}  # ours stay
        assert h.next_due() is not None and h.backends["vault"].take() == []
        assert await h.event("MODIFIED") is Action.NOTHING  # the PATCH's own event
        assert h.take() == []

    play(Harness(world(task=old_task())), scenario)


def test_the_patch_is_made_at_the_version_seen() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.restart()
        listed = copy.deepcopy(h.body())
        h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"metadata": {"labels": {"x": "y"}}})
        h.take()
        assert await h.deliver_task(None, listed) is Action.RESUME
        assert [(c.short, c.status) for c in h.take_calls()] == [(PATCH_TASK, 409)]
        assert FINALIZER in h.body()["metadata"]["finalizers"]  # its next event decides
        assert await h.event("MODIFIED") is Action.RESUME  # the listing's action, redone
        assert FINALIZER not in h.body()["metadata"]["finalizers"]

    play(Harness(world(task=old_task())), scenario)


def test_a_task_from_before_being_deleted_is_finalized_then_released() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.restart()
        await h.event(None)  # listed: the old finalizer removed ...
        h.server.edit(Plural.TASKS, NAMESPACE, "t1", {"metadata": {"finalizers": [FINALIZER]}})
        h.take()  # ... but say it was deleted before the upgraded operator started
        vault = h.backends["vault"]
        vault.take()
        await h.delete()  # held by the old finalizer: MODIFIED, then DELETED
        calls = h.take()
        # Failed/Deleted first (TaskEnded), the cleanup (the Secret checked ours first: a
        # new process), then the old finalizer released; its DELETED event: nothing left
        assert calls == [PATCH_STATUS, EVENT, GET_SECRET, *CLEANUP, PATCH_TASK]
        assert vault.take() == [("revoke", "accessor-1")]
        assert h.task() is None and not h.server.of("secrets")
        assert h.next_due() is None and not h.deps.cleaned and not h.deps.versions

    play(Harness(world(task=old_task())), scenario)


def test_a_deleted_tasks_handler_returns_at_once_and_its_cleanup_waits_its_turn() -> None:
    """The DELETED event's handler queues the cleanup (lifecycle.gone) and returns, so
    Kopf's worker and the event's body are dropped while thousands of deletions wait:
    what waits is the task's view in ``deps.departed`` and a scheduler entry due now."""

    async def scenario(h: Harness) -> None:
        await h.event("ADDED")
        uid = h.body()["metadata"]["uid"]
        h.take(), h.backends["vault"].take()
        h.server.remove(Plural.TASKS, NAMESPACE, "t1")
        last = h.last_state(Plural.TASKS, NAMESPACE, "t1")
        assert await h.deliver_task("DELETED", last) is Action.GONE
        assert h.take() == [] and h.backends["vault"].take() == []  # nothing done yet
        assert isinstance(h.deps.departed[uid], TaskView) and h.next_due() == 0
        assert await h.run_due() == 1
        assert h.backends["vault"].take() == [("revoke", "accessor-1")]
        assert h.secret_data(NAMESPACE, "t1-db") is None and not h.server.of("secrets")
        assert GET_TASK not in h.take()  # no read: a DELETED event is final for its uid
        assert not h.deps.departed and h.next_due() is None

    play(Harness(world()), scenario)
