"""A CredentialQuarantine in-process: it ends exactly the matching tasks (Failed,
Quarantined), revokes their leases and deletes their Secrets with one LIST of tasks (no
LIST per task), refuses matching new tasks before any backend call, retries what could
not be revoked, and lifts when deleted. Also the renew-requested-at annotation, honoured
once per value."""

from __future__ import annotations

from typing import Any

from agentcred.backends.base import BackendUnavailable
from agentcred.models.api_names import Annotation, Plural, Reason
from agentcred.services import quarantine, renew_request
from agentcred.services.quarantine import QuarantineIncomplete
from support.harness import Harness, play
from support.harness.calls import (
    DELETE_SECRET,
    EVENT,
    GET_SECRET,
    GET_TASK,
    LIST_TASKS,
    PATCH_STATUS,
)
from support.harness.objects import (
    GROUP_VERSION,
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    service_account,
)

QUARANTINE_STATUS = ("patch", Plural.QUARANTINES, "status")
LIST_CREDENTIALS = ("list", Plural.CREDENTIALS, "")


def the_world() -> list[dict[str, Any]]:
    """team-a: t1 as agent, t2 as other (both on backend); team-b: t3 as agent on backend-b."""
    return [
        namespace(),
        namespace("team-b", {"env": "prod"}),
        service_account(),
        service_account("other"),
        service_account(ns="team-b"),
        credential_backend(),
        credential_backend("backend-b"),
        agent_credential(),
        agent_credential(ns="team-b", backend="backend-b"),
        agent_task("t1"),
        agent_task("t2", account="other"),
        agent_task("t3", ns="team-b"),
    ]


def a_quarantine(name: str = "q1", **targets: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "CredentialQuarantine",
        "metadata": {"name": name},
        "spec": {"reason": "prompt injection in claim-4711", **targets},
    }


async def all_started(h: Harness) -> None:
    for name, ns in (("t1", "team-a"), ("t2", "team-a"), ("t3", "team-b")):
        await h.start(name, ns)
    h.take()
    h.backends["vault"].take()


async def enforce(h: Harness, name: str = "q1", **targets: Any) -> dict[str, Any]:
    body = h.server.seed(a_quarantine(name, **targets))
    await quarantine.enforce(h.deps, body)
    found = h.server.read(Plural.QUARANTINES, "", name)
    assert found is not None
    return dict(found.get("status") or {})


def phase(h: Harness, name: str, ns: str = "team-a") -> tuple[str, str]:
    status = h.status(name, ns)
    return str(status.get("phase")), str(status.get("reason"))


def test_a_quarantine_by_service_account_ends_exactly_its_tasks_and_revokes_them() -> None:
    async def scenario(h: Harness) -> None:
        await all_started(h)
        status = await enforce(h, serviceAccounts=["team-a/agent"])
        calls = h.take()
        # One LIST of tasks for the whole enforcement; then, per matched task, first what
        # matters (its Secret deleted at the version we wrote it, its records read, its
        # session revoked, the records deleted), then its final status and TaskEnded.
        assert calls.count(LIST_TASKS) == 1
        assert calls.count(GET_TASK) == 1
        assert calls[0] == QUARANTINE_STATUS and calls[-1] == QUARANTINE_STATUS
        contain = [DELETE_SECRET, GET_SECRET, DELETE_SECRET]
        conclude = [GET_TASK, PATCH_STATUS, EVENT]
        assert calls[1:-1] == [LIST_TASKS, *contain, *conclude]
        assert h.backends["vault"].take() == [("revoke", "accessor-1")]
        assert phase(h, "t1") == ("Failed", Reason.QUARANTINED)
        assert "CredentialQuarantine q1: prompt injection" in h.status("t1")["message"]
        assert h.secret_data("team-a", "t1-db") is None and h.record_keys("t1") == []
        assert phase(h, "t2") == ("Active", Reason.CREDENTIALS_ISSUED)
        assert phase(h, "t3", "team-b") == ("Active", Reason.CREDENTIALS_ISSUED)
        assert h.secret_data("team-a", "t2-db") is not None
        assert status["matchedTasks"] == 1 and status["leasesRevoked"] == 1
        assert status["tasks"] == ["team-a/t1"] and status["revokeFailures"] == 0
        [complete] = status["conditions"]
        assert (complete["type"], complete["status"], complete["reason"]) == (
            "Complete",
            "True",
            Reason.ENFORCED,
        )
        assert "1 task(s) ended, 1 credential(s) revoked in" in complete["message"]

    play(Harness(the_world()), scenario)


def test_by_namespace_by_backend_and_by_selector_each_match_only_their_tasks() -> None:
    async def scenario(h: Harness) -> None:
        await all_started(h)
        await enforce(h, "by-backend", credentialBackends=["backend-b"])
        assert LIST_CREDENTIALS in h.take()  # one LIST to learn each credential's backend
        assert phase(h, "t3", "team-b")[1] == Reason.QUARANTINED
        assert phase(h, "t1")[0] == phase(h, "t2")[0] == "Active"
        await enforce(h, "by-labels", namespaceSelector={"matchLabels": {"env": "nope"}})
        assert phase(h, "t1")[0] == "Active"
        await enforce(h, "by-namespace", namespaces=["team-a"])
        assert phase(h, "t1")[1] == phase(h, "t2")[1] == Reason.QUARANTINED
        assert "by-namespace" in h.status("t2")["message"]

    play(Harness(the_world()), scenario)


def test_a_matching_new_task_is_refused_before_any_backend_call_until_lifted() -> None:
    async def scenario(h: Harness) -> None:
        # As the watch delivers it (its enforcement would end t1 and t2 at once: they exist).
        quarantine.observe(
            h.deps, "q1", a_quarantine(agentCredentials=["team-a/db"])["spec"], deleted=False
        )
        await h.start("t1")
        assert phase(h, "t1") == ("Failed", Reason.QUARANTINED)
        assert h.backends["vault"].take() == []  # no login, no issue
        assert h.secret_data("team-a", "t1-db") is None
        await h.start("t3", "team-b")  # another namespace's db: not matched
        assert phase(h, "t3", "team-b")[0] == "Active"
        await h.start("t2")
        assert phase(h, "t2")[1] == Reason.QUARANTINED
        quarantine.observe(h.deps, "q1", {}, deleted=True)  # deleted: lifted
        h.server.seed(agent_task("t4"))
        await h.start("t4")
        assert phase(h, "t4")[0] == "Active"
        assert phase(h, "t1")[0] == "Failed"  # nothing re-issued for what it ended

    play(Harness(the_world()), scenario)


def test_leases_that_cannot_be_revoked_yet_are_retried_until_done() -> None:
    async def scenario(h: Harness) -> None:
        await all_started(h)
        h.backends["vault"].fail("revoke", BackendUnavailable("vault down"), times=None)
        body = h.server.seed(a_quarantine(namespaces=["team-b"]))
        try:
            await quarantine.enforce(h.deps, body)
        except QuarantineIncomplete:
            pass
        else:
            raise AssertionError("an unrevoked lease must make the enforcement retry")
        status = (h.server.read(Plural.QUARANTINES, "", "q1") or {})["status"]
        assert status["revokeFailures"] == 1 and status["failures"][0].startswith("team-b/t3")
        assert status["conditions"][0]["status"] == "False"
        assert phase(h, "t3", "team-b") == ("Failed", Reason.QUARANTINED)
        assert h.secret_data("team-b", "t3-db") is None  # the Secret goes first
        h.backends["vault"].heal()
        await quarantine.enforce(h.deps, h.server.read(Plural.QUARANTINES, "", "q1") or {})
        status = (h.server.read(Plural.QUARANTINES, "", "q1") or {})["status"]
        assert status["revokeFailures"] == 0 and status["matchedTasks"] == 1
        assert status["conditions"][0]["status"] == "True"
        assert [c[0] for c in h.backends["vault"].take()][-1] == "revoke"
        assert h.record_keys("t3", "team-b") == []

    play(Harness(the_world()), scenario)


def test_a_quarantine_loaded_at_startup_refuses_before_the_first_task() -> None:
    async def scenario(h: Harness) -> None:
        await quarantine.load(h.deps)
        assert len(h.deps.quarantines) == 1
        await h.start("t2")
        assert phase(h, "t2") == ("Failed", Reason.QUARANTINED)

    play(Harness([*the_world(), a_quarantine(serviceAccounts=["team-a/other"])]), scenario)


def test_an_empty_selector_matches_nothing() -> None:
    async def scenario(h: Harness) -> None:
        await all_started(h)
        status = await enforce(h, taskSelector={"matchLabels": {}})
        assert status["matchedTasks"] == 0
        assert phase(h, "t1")[0] == phase(h, "t2")[0] == "Active"

    play(Harness(the_world()), scenario)


def test_a_renewal_request_is_honoured_once_per_value() -> None:
    def annotate(h: Harness, value: str) -> None:
        h.server.edit(
            Plural.TASKS,
            "team-a",
            "t1",
            {"metadata": {"annotations": {Annotation.RENEW_REQUESTED_AT.value: value}}},
        )

    async def scenario(h: Harness) -> None:
        await h.start()
        h.backends["vault"].take()
        annotate(h, "2026-01-01T00:00:00.000001Z")
        assert await renew_request.honour(h.deps, h.body())
        assert [c[0] for c in h.backends["vault"].take()] == ["renew"]
        assert h.entry()["renewals"] == 1
        assert h.status()["renewRequestedAt"] == "2026-01-01T00:00:00.000001Z"
        assert not await renew_request.honour(h.deps, h.body())  # the same value again
        h.restart()  # a new process sees the annotation in its first list: done already
        assert not await renew_request.honour(h.deps, h.body())
        assert h.backends["vault"].take() == []
        annotate(h, "2026-01-01T00:05:00.000001Z")
        assert await renew_request.honour(h.deps, h.body())
        assert [c[0] for c in h.backends["vault"].take()] == ["renew"]

    play(
        Harness(
            [namespace(), service_account(), credential_backend(), agent_credential(), agent_task()]
        ),
        scenario,
    )


def test_every_secret_and_session_goes_before_the_first_status_patch() -> None:
    async def scenario(h: Harness) -> None:
        await all_started(h)
        await enforce(h, credentialBackends=["backend", "backend-b"])
        calls = h.take()
        first_patch = calls.index(PATCH_STATUS)
        assert calls[first_patch:].count(DELETE_SECRET) == 0  # 3 Secrets + 3 records before
        assert calls[:first_patch].count(DELETE_SECRET) == 6
        # Every generated Secret before the first lease record is read (the revocations,
        # slower backend calls, come after what pods read is gone for every task).
        first_record_read = calls.index(GET_SECRET)
        assert calls[:first_record_read].count(DELETE_SECRET) == 3
        assert [c[0] for c in h.backends["vault"].take()] == ["revoke"] * 3
        assert all(
            phase(h, n, ns)[1] == Reason.QUARANTINED
            for n, ns in (("t1", "team-a"), ("t2", "team-a"), ("t3", "team-b"))
        )

    play(Harness(the_world()), scenario)


def test_drift_does_not_restore_the_secret_of_a_quarantined_task() -> None:
    async def scenario(h: Harness) -> None:
        await all_started(h)
        quarantine.observe(h.deps, "q1", {"reason": "r", "namespaces": ["team-a"]}, deleted=False)
        h.clock.advance(60)  # past drift's rate limit
        gone = h.server.remove("secrets", "team-a", "t1-db")
        await h.secret_changed(gone, "DELETED")
        assert h.backends["vault"].take() == []  # no fresh credential issued
        assert h.secret_data("team-a", "t1-db") is None
        reasons = {e.get("reason") for e in h.server.of("events")}
        assert "SecretRestored" not in reasons  # not even a failed attempt

    play(Harness(the_world()), scenario)


def test_requests_per_matched_task_stay_six_whatever_the_count() -> None:
    """30 tasks: one LIST for all, then 3 requests each to contain (Secret, records read
    and deleted) and 3 to conclude (read, status, Event); two quarantine status patches."""
    tasks = [agent_task(f"t{i}") for i in range(30)]
    world = [namespace(), service_account(), credential_backend(), agent_credential(), *tasks]

    async def scenario(h: Harness) -> None:
        for i in range(30):
            await h.start(f"t{i}")
        h.take()
        status = await enforce(h, namespaces=["team-a"])
        calls = h.take()
        assert status["matchedTasks"] == 30 and status["leasesRevoked"] == 30
        assert calls.count(LIST_TASKS) == 1
        assert len(calls) == 2 + 1 + 30 * 6

    play(Harness(world), scenario)


def test_every_matched_tasks_secret_goes_before_the_first_revocation() -> None:
    """More tasks than are ended at once (``quarantine.ENDING``): the Secrets of all of
    them are deleted before the first lease record is read for a revocation, so what pods
    read is gone for the last task without waiting for the others' backend calls."""
    count = quarantine.ENDING + 6
    tasks = [agent_task(f"t{i}") for i in range(count)]
    world = [namespace(), service_account(), credential_backend(), agent_credential(), *tasks]

    async def scenario(h: Harness) -> None:
        for i in range(count):
            await h.start(f"t{i}")
        h.take()
        await enforce(h, namespaces=["team-a"])
        calls = h.take()
        first_record_read = calls.index(GET_SECRET)
        assert calls[:first_record_read].count(DELETE_SECRET) == count

    play(Harness(world), scenario)
