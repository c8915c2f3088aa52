"""examples/chat-sessions/ on the node, as `make dev NODE=1 EXAMPLE=chat-sessions` runs it
(its image, its objects through agentcred_testbed/chat_example.py; here in the test's
namespace with the test's backend and Vault role), against the in-cluster operator:

* two concurrent sessions each run under their own AgentTask and get different database
  users;
* PostgreSQL's own log (``log_connections``) attributes each session's connection (its
  ``application_name`` is ``chat-<session>``) to that session's user;
* the operator's audit line for the issue and the session's trace in Jaeger (the service's
  ``agentcred.task`` span, continued by the operator's ``agentcred.issue``) name the same
  lease;
* once a session has ended, its user can no longer log in; the other session still works.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentcred import tracing
from agentcred.models.api_names import Annotation
from agentcred_testbed import chat_example, incluster, node, stack
from agentcred_testbed.procs import StateDir
from support import postgres, vault
from support.kube import wait_for
from support.node import TOLERATION, NodeScenario, operator_logs

pytestmark = pytest.mark.e2e

SERVICE_NAME = "chat-sessions-e2e"


def call(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=150) as answer:  # noqa: S310
            result: dict[str, Any] = json.load(answer)
            return result
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {url}: {exc.code} {exc.read()[:500]!r}") from None


@pytest.fixture
def connections_logged(testbed_env: dict[str, str]) -> Iterator[Path]:
    """PostgreSQL logs every connection (``log_connections``, on from a reload for new
    connections) to the testbed's log file; put back as found afterwards."""
    with postgres.superuser(testbed_env, autocommit=True) as conn:
        row = conn.execute("SHOW log_connections").fetchone()
        was_on = row is not None and row[0] == "on"
        if not was_on:
            conn.execute("ALTER SYSTEM SET log_connections = on")
            conn.execute("SELECT pg_reload_conf()")
    log = stack.default_root() / "logs" / "postgres.log"
    assert log.exists(), f"no PostgreSQL log at {log}"
    try:
        yield log
    finally:
        if not was_on:
            with postgres.superuser(testbed_env, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM RESET log_connections")
                conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def chat_service(
    node_scenario: NodeScenario, testbed_env: dict[str, str], connections_logged: Path
) -> str:
    """The example service running in the test's namespace; its base URL (the pod's IP,
    which the host reaches on the node's bridge)."""
    scene = node_scenario
    env = scene.env
    otlp = env.get("NODE_JAEGER_OTLP_ENDPOINT")
    if not otlp:
        pytest.fail(
            "the node has no route to Jaeger (no NODE_JAEGER_OTLP_ENDPOINT): it was started "
            "before it had one, or the testbed has no Jaeger; restart the testbed"
        )
    node.add_image(StateDir(stack.default_root()), env, chat_example.NAME)
    chat_example.seed(testbed_env)
    role = vault.kubernetes_role(testbed_env, scene.ns, chat_example.SERVICE_ACCOUNT)
    docs = chat_example.documents(
        database=f"{env['NODE_HOST_IP']}:{env['PGPORT']}/{env['PGDATABASE']}",
        namespace=scene.ns,
        backend=scene.vault_backend(),
        vault_role=role,
        otlp_endpoint=otlp,
        extra_env={"OTEL_SERVICE_NAME": SERVICE_NAME, "OTEL_BSP_SCHEDULE_DELAY": "200"},
        # The suites keep the node tainted (their node-less pods stay Pending); make dev
        # NODE=1 does not, and runs the same objects without this.
        tolerations=[TOLERATION],
    )
    incluster.kubectl(
        env,
        "-n",
        scene.ns,
        "apply",
        "--server-side",
        "-f",
        "-",
        input_text=yaml.safe_dump_all(docs),
    )
    incluster.kubectl(
        env,
        "-n",
        scene.ns,
        "rollout",
        "status",
        f"deployment/{chat_example.NAME}",
        "--timeout=150s",
        timeout=160,
    )
    (pod,) = scene.core.list_namespaced_pod(scene.ns, label_selector=chat_example.POD_LABELS).items
    return f"http://{pod.status.pod_ip}:{chat_example.PORT}"


def fetch_trace(query: str, trace_id: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{query}/api/traces/{trace_id}", timeout=5) as answer:  # noqa: S310
            body = json.load(answer)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    data = body.get("data") or []
    return data[0] if data else None


def spans(found: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {s["operationName"]: s for s in (found or {}).get("spans", [])}


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags") or []}


def audit_issue(env: dict[str, str], task: str) -> dict[str, Any] | None:
    """The in-cluster operator's audit line for ``task``'s issue, from its pods' logs."""
    for line in operator_logs(env).splitlines():
        start = line.find("{")
        if start < 0 or '"action"' not in line:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("task") == task and record.get("action") == "issue":
            return dict(record)
    return None


def test_each_chat_session_has_its_own_database_user_lease_and_trace(
    node_scenario: NodeScenario,
    testbed_env: dict[str, str],
    chat_service: str,
    connections_logged: Path,
) -> None:
    scene = node_scenario
    with ThreadPoolExecutor(2) as pool:  # two sessions opened at once
        opened = list(pool.map(lambda _: call("POST", f"{chat_service}/sessions"), range(2)))
    sessions = {s["session"]: s["task"] for s in opened}
    assert len(sessions) == 2 and len(set(sessions.values())) == 2, opened

    users: dict[str, dict[str, str]] = {}
    for session, task in sessions.items():
        data = scene.read_secret(f"{task}-{chat_example.CREDENTIAL}")
        assert data is not None, f"task {task} of session {session} has no Secret"
        scene.values.update({data["password"]})
        answer = call(
            "POST", f"{chat_service}/sessions/{session}/questions", {"question": "who am i?"}
        )
        assert answer["rows"] == [[data["username"]]], answer
        claims = call(
            "POST",
            f"{chat_service}/sessions/{session}/questions",
            {"question": "How many claims were filed in May?"},
        )
        assert claims["rows"] == [[4]], claims
        users[session] = data
    assert len({u["username"] for u in users.values()}) == 2, "two sessions, one database user"

    # PostgreSQL's log: the session's connection, authorized as the session's user.
    for session, data in users.items():
        database = testbed_env["PGDATABASE"]
        line = f"user={data['username']} database={database} application_name=chat-{session}"
        wait_for(
            lambda line=line: line in connections_logged.read_text(errors="replace"),
            20,
            f"PostgreSQL's log: connection authorized: {line}",
        )

    # The first session ends: its user is gone before the answer comes.
    first, task = next(iter(sessions.items()))
    ended = call("DELETE", f"{chat_service}/sessions/{first}")
    assert ended == {"session": first, "task": task, "ended": True}
    assert not postgres.can_login(testbed_env, users[first]["username"], users[first]["password"])
    assert scene.status(task)["phase"] == "Succeeded"

    # Its audit line and its trace (the session's span, ended now, with the operator's issue
    # and revoke inside) name the same lease.
    audit = wait_for(lambda: audit_issue(scene.env, task), 30, f"the audit line of {task}'s issue")
    assert audit["correlation_id"] == first
    annotations = (scene.get_task(task) or {})["metadata"]["annotations"]
    match = tracing.TRACEPARENT.fullmatch(annotations[Annotation.TRACEPARENT])
    assert match is not None, annotations
    trace_id, query = match[1], testbed_env["JAEGER_QUERY_URL"]
    wanted = {"agentcred.task", tracing.ISSUE, tracing.REVOKE}
    found = wait_for(
        lambda: (f := fetch_trace(query, trace_id)) and wanted <= set(spans(f)) and f,
        60,
        f"trace {trace_id} in Jaeger with {sorted(wanted)}",
        describe=lambda: sorted(spans(fetch_trace(query, trace_id))),
    )
    named = spans(found)
    session_span, issue, revoke = (
        named[n] for n in ("agentcred.task", tracing.ISSUE, tracing.REVOKE)
    )
    assert found["processes"][session_span["processID"]]["serviceName"] == SERVICE_NAME
    assert tags(issue)["agentcred.task"] == task
    assert tags(issue)["agentcred.lease_id"] == tags(revoke)["agentcred.lease_id"]
    assert tags(issue)["agentcred.lease_id"] == audit["lease_id"] != ""
    assert users[first]["password"] not in json.dumps(found)

    # The other session still works as its own user, until it ends too.
    other = next(s for s in sessions if s != first)
    still = call("POST", f"{chat_service}/sessions/{other}/questions", {"question": "who am i"})
    assert still["rows"] == [[users[other]["username"]]]
    call("DELETE", f"{chat_service}/sessions/{other}")
    assert not postgres.can_login(testbed_env, users[other]["username"], users[other]["password"])
