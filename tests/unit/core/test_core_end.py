"""How a task ends and what is left: completed, deleted, its pods finished; the orphan
sweep; drift repair; a restart. Exact API and backend calls, and the status."""

from __future__ import annotations

import asyncio

from agentcred.backends.base import BackendUnavailable
from agentcred.models.api_names import Reason
from support.harness import Harness, Slow, play
from support.harness.calls import (
    CREATE_SECRET,
    DELETE_OURS,
    DELETE_SECRET,
    EVENT,
    GET_SECRET,
    GET_TASK,
    LIST_PODS,
    LIST_SECRETS,
    LIST_TASKS,
    PATCH_SECRET,
    PATCH_STATUS,
    REPLACE_SECRET,
    RESOLVE,
    TOKEN,
)
from support.harness.objects import OPERATOR_NAMESPACE, agent_task, pod, world

# The end of a task holding one Vault lease: its Secret deleted, its session revoked
# (CredentialRevoked) and the lease record deleted, then the final phase with the
# revoked entries in one patch, then TaskEnded. Both Secrets are deleted at the version
# we wrote (or just read) them, as the precondition: no read first.
CLEANUP = [DELETE_SECRET, GET_SECRET, EVENT, DELETE_SECRET]
ENDED = [PATCH_STATUS, EVENT]


async def started(h: Harness) -> None:
    await h.start()
    h.take()
    for backend in h.backends.values():
        backend.take()


def test_completed_the_task_succeeds_and_everything_is_revoked() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        await h.complete()  # its MODIFIED event: the body is the read, no GET
        assert h.take() == [*CLEANUP, *ENDED]
        assert h.backends["vault"].take() == [("revoke", "accessor-1")]
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Succeeded", Reason.COMPLETED)
        assert h.entry()["state"] == "Revoked"
        assert h.secret_data("team-a", "t1-db") is None and h.record_keys() == []
        await h.delete()  # then deleted: this process cleaned it up, nothing to look at
        assert h.take() == []
        assert h.task() is None and h.backends["vault"].take() == []

    play(Harness(world()), scenario)


def test_a_new_operator_looks_again_before_it_releases_an_ended_task() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        await h.complete()
        h.restart()  # the cleanup done is the old process's knowledge, not the cluster's
        h.take()
        await h.delete()
        assert h.take() == [GET_SECRET, GET_SECRET]  # the Secret, the records
        assert h.task() is None

    play(Harness(world()), scenario)


def test_an_ended_task_issued_for_again_is_cleaned_up_again() -> None:
    """The mark "cleaned up" goes with any issue for the task: nothing it holds is missed."""

    async def scenario(h: Harness) -> None:
        await started(h)
        await h.complete()
        h.server.edit("agenttasks", "team-a", "t1", {"status": {"phase": "Active"}})
        h.server.edit("agenttasks", "team-a", "t1", {"spec": {"completed": False}})
        uid = (h.task() or {})["metadata"]["uid"]
        assert uid in h.deps.cleaned
        await h.start()  # someone set it Active again: its credentials are issued again
        assert uid not in h.deps.cleaned
        assert h.secret_data("team-a", "t1-db") is not None
        h.take()
        h.backends["vault"].take()
        await h.delete()
        assert h.secret_data("team-a", "t1-db") is None
        assert h.server.read("secrets", OPERATOR_NAMESPACE, f"agentcred-session-{uid}") is None
        assert [c[0] for c in h.backends["vault"].take()] == ["revoke"]

    play(Harness(world()), scenario)


def test_deleted_before_it_finished_the_task_fails_and_everything_is_revoked() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        await h.delete()
        # Gone at once (no finalizer): its DELETED event cleans up (no status: there is
        # no task to patch), then TaskEnded (Failed, Deleted)
        assert h.take() == [*CLEANUP, EVENT]
        assert h.backends["vault"].take() == [("revoke", "accessor-1")]
        assert h.task() is None
        assert not [s for s in h.server.of("secrets")]  # neither Secret nor lease record
        assert h.next_due() is None  # forgotten by the scheduler

    play(Harness(world()), scenario)


def test_its_pods_finished_the_task_ends_with_them() -> None:
    selector = {"matchLabels": {"app": "agent"}}

    async def scenario(h: Harness) -> None:
        h.server.seed(pod("p1", {"app": "agent"}))
        await h.start()
        calls = h.take()
        assert calls[-2:] == [LIST_PODS, PATCH_STATUS]  # the pod recorded as seen
        assert h.status()["pods"]["seen"]
        done = h.server.edit("pods", "team-a", "p1", {"status": {"phase": "Succeeded"}})
        await h.pod_changed(done)
        # the task read once, under its lock (its uid from the pod index)
        assert h.take() == [GET_TASK, LIST_PODS, PATCH_STATUS, *CLEANUP, *ENDED]
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Succeeded", Reason.PODS_SUCCEEDED)
        assert h.backends["vault"].take()[-1] == ("revoke", "accessor-1")

    play(Harness(world(task=agent_task(pod_selector=selector))), scenario)


def test_a_pod_of_no_task_costs_nothing() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        await h.pod_changed(pod("other", {"app": "else"}))
        assert h.take() == []

    play(Harness(world(task=agent_task(pod_selector={"matchLabels": {"app": "agent"}}))), scenario)


def test_the_sweep_revokes_the_session_of_a_task_gone_without_its_finalizer() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        h.server.edit("agenttasks", "team-a", "t1", {"metadata": {"finalizers": None}})
        h.server.remove("agenttasks", "team-a", "t1")  # gone; GC took its Secret
        result = await h.sweep()
        assert (result.found, result.revoked, result.failed) == (1, 1, 0)
        assert h.take() == [LIST_SECRETS, GET_TASK, GET_SECRET, *DELETE_OURS, LIST_TASKS]
        assert h.backends["vault"].take() == [("revoke", "accessor-1")]
        assert not [
            s for s in h.server.of("secrets") if s["metadata"]["namespace"] == OPERATOR_NAMESPACE
        ]

    play(Harness(world()), scenario)


def test_the_sweep_of_a_quiet_cluster_costs_two_lists() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        result = await h.sweep()
        assert (result.found, result.revoked) == (0, 0)
        assert h.take() == [LIST_SECRETS, GET_TASK, LIST_TASKS]  # one task read per session
        assert h.backends["vault"].take() == []

    play(Harness(world()), scenario)


# A restore: the fresh credential under "<cred>.next", the Secret rewritten (the careful
# way: it was written by someone else), the records rotated as the issue left them (one
# patch, no read), the exposed one revoked at once (overlap 0: CredentialRevoked) and
# dropped (one patch), then the entry in one status patch (no retireAt left to clear),
# then SecretRestored.
RESTORE_TAIL = [PATCH_SECRET, EVENT, PATCH_SECRET, PATCH_STATUS, EVENT]


def test_an_edited_secret_is_restored_with_a_fresh_credential_and_the_exposed_one_revoked() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        h.clock.advance(60)  # past the 30 s between re-issues of one credential
        edited = h.edit_secret("team-a", "t1-db", {"password": "changed"})
        await h.secret_changed(edited)
        login = [TOKEN, PATCH_SECRET]  # recorded at the version just read
        head = [GET_TASK, *RESOLVE, GET_SECRET, *login, *REPLACE_SECRET]
        assert h.take() == head + RESTORE_TAIL
        assert h.backends["vault"].take() == [
            ("login", "db"),
            ("issue", "db"),
            ("revoke", "accessor-1"),
        ]
        assert h.secret_data("team-a", "t1-db") == {
            "username": "user-lease-4",
            "password": "pw-lease-4",
        }
        assert h.record_keys() == ["db"] and h.entry()["reissues"] == 1

    play(Harness(world()), scenario)


def test_a_deleted_secret_is_restored() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        h.clock.advance(60)
        gone = h.server.remove("secrets", "team-a", "t1-db")
        await h.secret_changed(gone, "DELETED")
        login = [TOKEN, PATCH_SECRET]  # recorded at the version just read
        head = [GET_TASK, *RESOLVE, GET_SECRET, *login, CREATE_SECRET]
        assert h.take() == head + RESTORE_TAIL
        assert h.secret_data("team-a", "t1-db") == {
            "username": "user-lease-4",
            "password": "pw-lease-4",
        }

    play(Harness(world()), scenario)


def test_the_operators_own_write_is_not_drift() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        own = h.server.read("secrets", "team-a", "t1-db") or {}
        await h.secret_changed(own)
        assert h.take() == []

    play(Harness(world()), scenario)


def test_the_operators_own_delete_is_not_drift() -> None:
    """A burst of ended tasks must not read each task again to learn its Secret's
    DELETED event was the cleanup's own."""

    async def scenario(h: Harness) -> None:
        await started(h)
        own = h.server.read("secrets", "team-a", "t1-db") or {}
        await h.complete()
        h.take()
        h.clock.advance(60)  # past the rate limit of restores (it sleeps in real time)
        await h.secret_changed(own, "DELETED")
        assert h.take() == []
        await h.secret_changed(own, "DELETED")  # consumed: a second delete is looked at
        assert h.take() == [GET_TASK]

    play(Harness(world()), scenario)


def test_an_event_of_our_write_that_comes_before_its_version_is_known_reads_nothing() -> None:
    """The watch may deliver our own write before the writer has recorded its version;
    the check waits for the task's lock and then finds the version recorded."""

    async def scenario(h: Harness) -> None:
        await started(h)
        own = h.server.read("secrets", "team-a", "t1-db") or {}
        key, version = ("team-a", "t1-db"), own["metadata"]["resourceVersion"]
        uid = h.body()["metadata"]["uid"]
        async with h.deps.locks.hold(uid):  # the writer, between its write and the record
            h.deps.written[key] = "an older version"
            checking = asyncio.create_task(h.secret_changed(own))
            await asyncio.sleep(0)
            h.deps.written[key] = version
        await checking
        assert h.take() == []

    play(Harness(world()), scenario)


def test_a_restart_rebuilds_the_schedule_from_listed_tasks_without_a_call() -> None:
    async def scenario(h: Harness) -> None:
        for name in ("t1", "t2", "t3"):
            await h.start(name)
        due = {n: h.next_due() for n in ("t1",)}
        h.restart()  # a new operator process: nothing scheduled
        h.take()
        assert h.next_due() is None
        for name in ("t1", "t2", "t3"):
            await h.resume(name)  # Kopf lists the tasks and resumes each
        assert h.take() == []  # active, complete: the schedule comes from the status
        assert h.next_due() == due["t1"]
        assert all(h.scheduler.due_in(h.body(n)["metadata"]["uid"]) for n in ("t1", "t2", "t3"))
        assert [c for b in h.backends.values() for c in b.take()].count(("login", "db")) == 3

    play(Harness([*world(), agent_task("t2"), agent_task("t3")]), scenario)


def test_a_restart_takes_a_pending_task_through_the_full_path() -> None:
    async def scenario(h: Harness) -> None:
        h.restart()
        await h.resume()  # never issued (the operator died first): issued now
        assert h.status()["phase"] == "Active"
        assert GET_TASK not in h.take()  # the listed body is the read

    play(Harness(world()), scenario)


def test_a_task_deleted_while_its_issue_is_in_flight_is_cleaned_up_after_it() -> None:
    async def scenario(h: Harness) -> None:
        slow = h.backends["vault"]
        assert isinstance(slow, Slow)
        starting = asyncio.create_task(h.event("ADDED"))
        await slow.issuing.entered.wait()  # logged in, the session recorded, issue waiting
        deleting = asyncio.create_task(h.delete())  # its DELETED event waits for the lock
        slow.issuing.open()
        await asyncio.gather(starting, deleting)
        assert h.task() is None
        assert [op for op, _ in slow.take()] == ["login", "issue", "revoke"]
        assert not h.server.of("secrets")  # neither the Secret nor the lease record
        assert h.next_due() is None and not h.deps.redo  # nothing left to retry

    play(Harness(world(), {"vault": Slow()}), scenario)


def test_a_revocation_that_fails_for_now_is_retried_until_the_session_is_gone() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        vault = h.backends["vault"]
        vault.fail("revoke", BackendUnavailable("connection refused"), times=None)
        await h.complete()  # fails for now: the scheduler retries it, with our backoff
        uid = h.body()["metadata"]["uid"]
        assert uid in h.deps.redo and h.scheduler.attempts(uid) == 1
        assert h.ready() is not None
        assert h.status()["phase"] == "Succeeded"  # the outcome is recorded anyway
        assert h.secret_data("team-a", "t1-db") is None  # the Secret goes first
        assert h.record_keys() == ["db"]  # the record stays until the session is gone
        vault.heal()
        vault.take()
        await h.advance(h.next_due() or 0)
        assert vault.take() == [("revoke", "accessor-1")]
        assert h.record_keys() == []
        h.take()
        assert h.next_due() is None  # cleanup done: forgotten at once, no step to look again

    play(Harness(world()), scenario)


def test_a_restore_whose_exposed_credential_cannot_be_revoked_yet_retires_it_later() -> None:
    async def scenario(h: Harness) -> None:
        await started(h)
        h.clock.advance(60)
        vault = h.backends["vault"]
        vault.fail("revoke", BackendUnavailable("connection refused"))
        edited = h.edit_secret("team-a", "t1-db", {"password": "changed"})
        await h.secret_changed(edited)
        assert h.take()[-2:] == [PATCH_STATUS, EVENT]  # one status patch, then SecretRestored
        assert "retireAt" in h.entry()  # due now: the scheduler retries the revocation
        assert h.record_keys() == ["db", "db.previous"]
        await h.advance(h.next_due() or 0)
        assert vault.take()[-1] == ("revoke", "accessor-1")
        assert h.record_keys() == ["db"] and "retireAt" not in h.entry()

    play(Harness(world()), scenario)
