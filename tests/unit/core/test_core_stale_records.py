"""The write-ahead lease record of a new task is created with no read first (issue 22); a
record already there (an attempt that never completed left it) makes the create fail
409, and only then is it read: its identity checked, the stale session under the key
revoked, one write of all records, as before. A session logged in for nothing (the
record could not be written, or the found records say the identity changed) is revoked."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from agentcred.kube.errors import KubeUnavailable
from agentcred.models.api_names import Label
from agentcred.services.errors import TaskFailed
from support.harness import Harness, play
from support.harness.calls import (
    CREATE_SECRET,
    EVENT,
    GET_SECRET,
    PATCH_SECRET,
    PATCH_STATUS,
    TOKEN,
    Short,
)
from support.harness.objects import OPERATOR_NAMESPACE, agent_task, world


def record_name(h: Harness, task: str) -> str:
    return f"agentcred-session-{h.body(task)['metadata']['uid']}"


def leave_stale_record(h: Harness, task: str, **changes: str) -> None:
    """A lease record of ``task`` as an attempt that died before its status patch left it
    (a copy of t1's record, with its own session and ``changes``)."""
    data = h.secret_data(OPERATOR_NAMESPACE, record_name(h, "t1"))
    assert data is not None
    record = {**json.loads(data["db"]), "ref": "accessor-stale", "secret": "s", **changes}
    h.server.seed(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": record_name(h, task),
                "namespace": OPERATOR_NAMESPACE,
                "labels": {Label.SESSION.value: "true"},
            },
            "data": {"db": base64.b64encode(json.dumps(record).encode()).decode()},
        }
    )


def test_a_stale_record_found_by_the_create_is_read_and_its_session_revoked() -> None:
    async def scenario(h: Harness) -> tuple[Any, ...]:
        await h.start("t1")
        leave_stale_record(h, "t2")
        h.take(), h.backends["vault"].take()
        await h.start("t2")
        calls = [(c.short, c.status) for c in h.take_calls()]
        return calls, h.backends["vault"].take(), h.record_keys("t2"), h.status("t2")["phase"]

    calls, backend_calls, keys, phase = play(Harness([*world(), agent_task("t2")]), scenario)
    expected: list[tuple[Short, int]] = [
        (TOKEN, 201),
        (CREATE_SECRET, 409),  # the record exists: never overwritten
        (GET_SECRET, 200),  # read: a session under "db", logged in as the same account
        (PATCH_SECRET, 200),  # one write, at the version read: the new session under "db"
        (CREATE_SECRET, 201),  # the generated Secret
        (EVENT, 201),
        (PATCH_STATUS, 200),
    ]
    assert calls == expected
    assert backend_calls == [("login", "db"), ("revoke", "accessor-stale"), ("issue", "db")]
    assert (keys, phase) == (["db"], "Active")


def test_a_stale_record_of_another_account_revokes_the_session_just_logged_in() -> None:
    async def scenario(h: Harness) -> tuple[Any, ...]:
        await h.start("t1")
        leave_stale_record(h, "t2", serviceAccount="someone-else")
        h.backends["vault"].take()
        with contextlib.suppress(TaskFailed):
            await h.start("t2")
        return h.backends["vault"].take(), h.status("t2").get("phase"), h.ready("t2")

    backend_calls, phase, ready = play(Harness([*world(), agent_task("t2")]), scenario)
    assert backend_calls[:2] == [("login", "db"), ("revoke", "accessor-3")]  # the fresh one
    assert ("issue", "db") not in backend_calls  # nothing issued for the new identity
    assert (phase, ready) == ("Failed", ("False", "IdentityChanged"))


def test_a_record_that_cannot_be_written_revokes_the_session_and_issues_nothing() -> None:
    async def scenario(h: Harness) -> tuple[Any, ...]:
        h.server.fail("create", "secrets", 500)  # the first create: the lease record
        with contextlib.suppress(KubeUnavailable):  # Kopf retries the handler
            await h.start("t1")
        return h.backends["vault"].take(), h.record_keys("t1")

    assert play(Harness(world()), scenario) == ([("login", "db"), ("revoke", "accessor-1")], [])
