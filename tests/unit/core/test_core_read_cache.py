"""The read cache behind resolve (services/lookups.py, services/cluster_view.py): what the
watch delivered is read without a request; a miss is one GET, trusted 2 s; an edit or a
deletion the watch delivers applies to the very next issue; a deletion a broken watch
never reported is forgotten at the re-list.

The attacker here is a tenant who keeps creating tasks after the platform withdrew what
allowed them: once the watch has delivered the platform's edit, nothing more is issued
(the backend is never called for the new task)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from agentcred.backends.registry import BackendRegistry
from agentcred.handlers import OperatorMemo, backends, credentials, namespaces
from agentcred.handlers.filters import served_namespace
from agentcred.models.api_names import Plural, Reason
from agentcred.services import cluster_view
from agentcred.services.deps import Deps
from agentcred.services.errors import TaskRetry
from agentcred.services.lookups import LOOKUP_SECONDS, Lookups
from agentcred.settings import Settings
from support.harness import Harness, play
from support.harness.calls import GET_BACKEND, GET_CREDENTIAL, GET_NAMESPACE, Short
from support.harness.objects import (
    NAMESPACE,
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    world,
)
from support.harness.store import Body

LOOKUPS = {GET_CREDENTIAL, GET_BACKEND, GET_NAMESPACE}


def lookups(calls: list[Short]) -> list[Short]:
    return [c for c in calls if c in LOOKUPS]


def tasks(*names: str, credential: str = "db") -> list[Body]:
    return [agent_task(n, credentials=[credential]) for n in names]


async def refused(h: Harness, task: str) -> tuple[str, str] | None:
    """Start ``task``; its Ready condition once it ended or waits (nothing issued)."""
    with contextlib.suppress(TaskRetry):
        await h.start(task)
    assert h.secret_data(NAMESPACE, f"{task}-db") is None
    return h.ready(task)


def test_what_the_watch_delivered_costs_no_request() -> None:
    async def scenario(h: Harness) -> list[Short]:
        await h.start("t1")
        await h.start("t2")
        h.clock.advance(3600)  # kept until the watch says otherwise, not for a while
        await h.start("t3")
        return lookups(h.take())

    assert play(Harness([*world(), *tasks("t2", "t3")]), scenario) == []


def test_a_miss_is_one_get_kept_two_seconds_then_the_watch_keeps_it() -> None:
    async def scenario(h: Harness) -> list[list[Short]]:
        # created after this process listed the credentials; the watch has not told it yet
        h.server.seed(agent_credential("late"))
        seen = []
        for task in ("t1", "t2"):  # a burst: one GET for both
            await h.start(task)
            seen.append(lookups(h.take()))
        h.clock.advance(LOOKUP_SECONDS + 1)
        await h.start("t3")  # a GET's answer is trusted 2 s only
        seen.append(lookups(h.take()))
        h.deliver(Plural.CREDENTIALS, "late", NAMESPACE, "ADDED")
        h.clock.advance(3600)
        await h.start("t4")
        seen.append(lookups(h.take()))
        assert all(h.status(t)["phase"] == "Active" for t in ("t1", "t2", "t3", "t4"))
        return seen

    objects = [*world(), *tasks("t2", "t3", "t4", credential="late")]
    objects[-4] = agent_task("t1", credentials=["late"])
    assert play(Harness(objects), scenario) == [[GET_CREDENTIAL], [], [GET_CREDENTIAL], []]


def test_a_backend_edited_to_drop_the_namespace_refuses_the_next_issue() -> None:
    async def scenario(h: Harness) -> tuple[Any, ...]:
        await h.start("t1")
        vault = h.backends["vault"]
        vault.take()
        # the platform withdraws team-a: only namespaces labelled tier=trusted from now on
        h.server.edit(
            Plural.BACKENDS,
            "",
            "backend",
            {"spec": {"namespaceSelector": {"matchLabels": {"tier": "trusted"}}}},
        )
        h.deliver(Plural.BACKENDS, "backend")
        h.take()
        ready = await refused(h, "t2")
        return ready, vault.take(), lookups(h.take()), h.status("t2")["phase"]

    ready, backend_calls, reads, phase = play(Harness([*world(), *tasks("t2")]), scenario)
    assert ready == ("False", Reason.NOT_ALLOWED)
    assert (backend_calls, reads, phase) == ([], [], "Failed")  # nothing sent, nothing read


def test_a_namespace_label_removed_refuses_the_next_issue() -> None:
    selector = {"namespaceSelector": {"matchLabels": {"agents": "allowed"}}}
    objects = [
        namespace(labels={"agents": "allowed"}),
        *world()[1:2],
        credential_backend(**selector),
        *world()[3:],
        *tasks("t2"),
    ]

    async def scenario(h: Harness) -> tuple[Any, ...]:
        await h.start("t1")
        assert h.status("t1")["phase"] == "Active"
        vault = h.backends["vault"]
        vault.take()
        h.server.edit("namespaces", "", NAMESPACE, {"metadata": {"labels": {"agents": None}}})
        h.deliver("namespaces", NAMESPACE)
        return await refused(h, "t2"), vault.take()

    assert play(Harness(objects), scenario) == (("False", Reason.NOT_ALLOWED), [])


@pytest.mark.parametrize(
    ("plural", "name", "ns", "reason", "read"),
    [
        (Plural.CREDENTIALS, "db", NAMESPACE, Reason.CREDENTIAL_NOT_FOUND, GET_CREDENTIAL),
        (Plural.BACKENDS, "backend", "", Reason.BACKEND_NOT_FOUND, GET_BACKEND),
    ],
    ids=["AgentCredential", "CredentialBackend"],
)
def test_a_deleted_object_issues_nothing_more(
    plural: str, name: str, ns: str, reason: str, read: Short
) -> None:
    async def scenario(h: Harness) -> tuple[Any, ...]:
        await h.start("t1")
        vault = h.backends["vault"]
        vault.take()
        h.server.remove(plural, ns, name)
        h.deliver(plural, name, ns, "DELETED")
        h.take()
        return await refused(h, "t2"), vault.take(), lookups(h.take())

    # the deletion dropped the entry: one GET (a miss) says it is gone
    assert play(Harness([*world(), *tasks("t2")]), scenario) == (("False", reason), [], [read])


def test_a_deletion_a_broken_watch_never_reported_is_forgotten_at_the_relist() -> None:
    """Kopf lists again after a watch broke for long (410 Gone) and reports only what
    still exists (events of type None): the backend deleted meanwhile is dropped."""

    async def scenario(h: Harness) -> tuple[Any, ...]:
        await h.start("t1")
        h.server.remove(Plural.BACKENDS, "", "backend")  # no DELETED event reached us
        h.clock.advance(60)
        h.deliver(Plural.BACKENDS, "other", event_type=None)  # the re-list
        h.take()
        return await refused(h, "t2"), lookups(h.take())

    objects = [*world(), credential_backend("other"), *tasks("t2")]
    assert play(Harness(objects), scenario) == (
        ("False", Reason.BACKEND_NOT_FOUND),
        [GET_BACKEND],
    )


def test_a_get_overtaken_by_an_event_is_not_kept() -> None:
    """A GET's answer may be older than an event that arrived while it was on its way:
    the event wins, the answer is used by its callers only."""

    async def scenario() -> tuple[Any, ...]:
        cache = Lookups(clock=lambda: 0.0)
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_get() -> str:
            started.set()
            await release.wait()
            return "allows team-a"

        get = asyncio.create_task(cache.get(("CredentialBackend", "b"), slow_get))
        await started.wait()
        cache.observe(("CredentialBackend", "b"), None)  # deleted while the GET was out
        release.set()
        answered = await get

        async def fresh_get() -> str | None:
            return None  # 404

        return answered, await cache.get(("CredentialBackend", "b"), fresh_get)

    assert asyncio.run(scenario()) == ("allows team-a", None)


def test_a_relist_drops_every_entry_of_its_kind_once() -> None:
    cache, now = Lookups(clock=lambda: now[0]), [0.0]
    cache.observe(("CredentialBackend", "gone"), {"a": 1})
    cache.observe(("Namespace", "team-a"), {})
    cache.listed("CredentialBackend")  # the re-list's first event
    cache.observe(("CredentialBackend", "kept"), {"b": 2})
    now[0] = 1.0
    cache.listed("CredentialBackend")  # the same listing: what it delivered stays
    assert len(cache) == 2  # "kept" and the namespace, never "gone"


def test_the_event_handlers_keep_a_copy_of_the_spec_or_labels_only() -> None:
    memo = OperatorMemo(settings=Settings(namespace="agentcred-system"))
    deps = memo.started = Deps(api=None, backends=BackendRegistry(), settings=memo.settings)
    heavy = {"managedFields": [{"manager": "kubectl"}], "annotations": {"a": "b" * 1000}}
    backend = {
        "metadata": {"name": "b", **heavy},
        "spec": {"namespaceSelector": {}},
        "status": {"conditions": []},
    }
    credential = {"metadata": {"name": "db", "namespace": "team-a", **heavy}, "spec": {"x": 1}}
    ns = {"metadata": {"name": "team-a", "labels": {"tier": "1"}, **heavy}, "spec": {}}

    async def scenario() -> tuple[Any, ...]:
        await backends.observed(type="ADDED", body=backend, memo=memo)
        await credentials.observed(type=None, body=credential, memo=memo)
        await namespaces.observed(type="MODIFIED", body=ns, memo=memo)
        backend["spec"]["namespaceSelector"] = {"matchLabels": {"edited": "in place"}}
        return (
            await cluster_view.backend(deps, "b"),
            await cluster_view.credential(deps, "team-a", "db"),
            await cluster_view.namespace_labels(deps, "team-a"),
        )

    assert asyncio.run(scenario()) == ({"namespaceSelector": {}}, {"x": 1}, {"tier": "1"})
    assert not served_namespace("kube-system", memo) and served_namespace("team-a", memo)
    asyncio.run(backends.observed(type="DELETED", body=backend, memo=memo))
    deleting = {**credential, "metadata": {**credential["metadata"], "deletionTimestamp": "x"}}
    asyncio.run(credentials.observed(type="MODIFIED", body=deleting, memo=memo))
    assert len(deps.lookups) == 1  # the namespace's labels: the others are gone
