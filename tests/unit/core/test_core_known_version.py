"""Writing a Secret we know at its resourceVersion (kube/secrets.write_secret's
``known_version``): one patch when it is as we left it, and the careful way (create,
read, check it is ours) when anyone touched it since, so that the one-request write
never overwrites a Secret that is not ours. Events are counted the same way
(kube/events.py): one patch at the version we posted, the read only when it changed."""

from __future__ import annotations

import base64

from agentcred.models.api_names import EventReason, Label
from support.harness import Harness, play
from support.harness.calls import (
    CREATE_SECRET,
    GET_SECRET,
    GET_TASK,
    PATCH_SECRET,
    PATCH_STATUS,
    RESOLVE,
    UPDATE_SECRET,
)
from support.harness.objects import NAMESPACE, world

THEIRS = {"token": base64.b64encode(b"not ours").decode()}


def test_a_secret_as_we_wrote_it_is_refreshed_in_one_patch() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.take()
        await h.advance(h.next_due() or 0)
        calls = [(c.short, c.name, c.status) for c in h.take_calls()]
        after = calls[1 + len(RESOLVE) :]
        assert after == [(PATCH_SECRET, "t1-db", 200), (PATCH_STATUS, "t1", 200)]

    play(Harness(world(request="awsSecretsManager")), scenario)


def test_a_secret_edited_since_is_read_and_checked_before_it_is_replaced() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.edit_secret(NAMESPACE, "t1-db", {"password": "changed"})  # no watch event seen
        h.take()
        await h.advance(h.next_due() or 0)
        calls = [(c.short, c.status) for c in h.take_calls()]
        assert calls == [
            (GET_TASK, 200),
            *((c, 200) for c in RESOLVE),
            (PATCH_SECRET, 409),  # not at the version we wrote any more
            (CREATE_SECRET, 409),
            (GET_SECRET, 200),  # read: still ours (label and owner), so replaced
            (UPDATE_SECRET, 200),
            (PATCH_STATUS, 200),
        ]
        assert h.secret_data(NAMESPACE, "t1-db") != {"password": "changed"}

    play(Harness(world(request="awsSecretsManager")), scenario)


def test_a_secret_replaced_by_someone_else_is_never_overwritten() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.server.remove("secrets", NAMESPACE, "t1-db")
        h.server.seed(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "t1-db", "namespace": NAMESPACE},
                "data": THEIRS,
            }
        )
        h.take()
        await h.advance(h.next_due() or 0)
        calls = [(c.short, c.status) for c in h.take_calls()]
        after = calls[1 + len(RESOLVE) :]
        assert after == [(PATCH_SECRET, 409), (CREATE_SECRET, 409), (GET_SECRET, 200)]
        secret = h.server.read("secrets", NAMESPACE, "t1-db")
        assert secret is not None and secret["data"] == THEIRS  # untouched
        assert Label.MANAGED_BY not in (secret["metadata"].get("labels") or {})

    play(Harness(world(request="awsSecretsManager")), scenario)


def test_the_write_ahead_record_is_in_the_cluster_before_the_lease_is_issued() -> None:
    """One write of the records (no read again to add to them) is still before the issue."""

    async def scenario(h: Harness) -> None:
        vault = h.backends["vault"]
        seen: list[list[str]] = []
        issue_with = vault.issue_with

        async def recording(*args: object, **kwargs: object) -> object:
            seen.append(h.record_keys())
            return await issue_with(*args, **kwargs)  # type: ignore[arg-type]

        vault.issue_with = recording  # type: ignore[method-assign]
        await h.start()
        assert seen == [["db"]]

    play(Harness(world()), scenario)


def test_an_event_the_task_already_has_is_counted_in_one_patch() -> None:
    """The second LeaseRenewed counts on the first Event at the version we posted it."""

    async def scenario(h: Harness) -> None:
        await h.start()
        await h.advance(h.next_due() or 0)  # the first renewal: LeaseRenewed created
        h.take()
        await h.advance(h.next_due() or 0)  # the second: the same Event, counted
        events = [(c.short, c.status) for c in h.take_calls() if c.resource == "events"]
        assert events == [(("patch", "events", ""), 200)]
        (renewed,) = [e for e in h.server.of("events") if e["reason"] == EventReason.RENEWED]
        assert renewed["count"] == 2

    play(Harness(world()), scenario)


def test_an_event_changed_since_is_read_before_it_is_counted() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await h.advance(h.next_due() or 0)
        (renewed,) = [e for e in h.server.of("events") if e["reason"] == EventReason.RENEWED]
        h.server.edit("events", NAMESPACE, renewed["metadata"]["name"], {"count": 5})
        h.take()
        await h.advance(h.next_due() or 0)
        events = [(c.short, c.status) for c in h.take_calls() if c.resource == "events"]
        assert events == [
            (("patch", "events", ""), 409),
            (("create", "events", ""), 409),
            (("get", "events", ""), 200),
            (("patch", "events", ""), 200),
        ]
        (renewed,) = [e for e in h.server.of("events") if e["reason"] == EventReason.RENEWED]
        assert renewed["count"] == 6

    play(Harness(world()), scenario)


def test_a_secret_replaced_by_someone_else_is_never_deleted() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.server.remove("secrets", NAMESPACE, "t1-db")
        h.server.seed(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "t1-db", "namespace": NAMESPACE},
                "data": THEIRS,
            }
        )
        h.take()
        await h.complete()
        calls = [(c.short, c.name, c.status) for c in h.take_calls()]
        assert calls[0:2] == [  # the event's body is the read: the Secret first
            (("delete", "secrets", ""), "t1-db", 409),  # not at the version we wrote
            (("get", "secrets", ""), "t1-db", 200),  # read: not ours, so left alone
        ]
        assert not any(c[0][0] == "delete" and c[2] == 200 and c[1] == "t1-db" for c in calls)
        secret = h.server.read("secrets", NAMESPACE, "t1-db")
        assert secret is not None and secret["data"] == THEIRS
        assert h.status()["phase"] == "Succeeded"

    play(Harness(world(request="awsSecretsManager")), scenario)
