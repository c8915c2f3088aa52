"""A test run leaves the testbed as it found it: what was there at the start, and the check
at the end of the run that fails it on anything left behind.

Leftovers are not cosmetic: a namespace stuck ``Terminating`` (an AgentTask whose
finalizer no running operator will remove) is re-listed by the namespace controller
without end, and 59 of them kept the API server, etcd and the controller manager at
~40 % of this machine's two cores, making the timing-sensitive suites flaky (issue 19).

``Baseline`` records the namespaces, CredentialBackends and lease records present when
the run starts; ``leftovers`` waits (bounded, on a watch) for the namespaces
the run created to go, and names what is left. ``release_stuck`` empties namespaces an
earlier run left stuck, so a run starts clean whatever came before it.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import Label, Plural
from support.kube import GROUP, VERSION

SESSION_SELECTOR = f"{Label.SESSION}=true"  # services/lease_records.py labels(): the records
# How long the namespace controller gets to empty the run's last namespaces: it deletes a
# namespace's content in a few seconds on this testbed; a finalizer nobody removes never.
WAIT_SECONDS = float(os.environ.get("AGENTCRED_LEFTOVER_WAIT", "90"))


@dataclass(frozen=True)
class Baseline:
    namespaces: frozenset[str]
    backends: frozenset[str]
    records: frozenset[str]
    objects: frozenset[str]  # "<plural> <namespace>/<name>" of AgentTasks and AgentCredentials


def _namespaces(core: client.CoreV1Api) -> dict[str, client.V1Namespace]:
    return {ns.metadata.name: ns for ns in core.list_namespace().items}


def _backends(api: client.ApiClient) -> set[str]:
    """Every CredentialBackend (a test's carry its namespace's label; some tests name theirs
    by a prefix instead)."""
    try:
        items = client.CustomObjectsApi(api).list_cluster_custom_object(
            GROUP, VERSION, Plural.BACKENDS
        )["items"]
    except ApiException as exc:
        if exc.status == 404:  # no CRDs (yet)
            return set()
        raise
    return {b["metadata"]["name"] for b in items}


def _objects(api: client.ApiClient) -> set[str]:
    """Every AgentTask and AgentCredential, as ``"<plural> <namespace>/<name>"``."""
    found: set[str] = set()
    for plural in (Plural.TASKS, Plural.CREDENTIALS):
        try:
            items = client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, plural)
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise
        found |= {
            f"{plural} {i['metadata']['namespace']}/{i['metadata']['name']}" for i in items["items"]
        }
    return found


def _records(core: client.CoreV1Api, operator_namespace: str) -> set[str]:
    secrets = core.list_namespaced_secret(operator_namespace, label_selector=SESSION_SELECTOR)
    return {s.metadata.name for s in secrets.items}


def baseline(api: client.ApiClient, operator_namespace: str) -> Baseline:
    core = client.CoreV1Api(api)
    return Baseline(
        namespaces=frozenset(_namespaces(core)),
        backends=frozenset(_backends(api)),
        records=frozenset(_records(core, operator_namespace)),
        objects=frozenset(_objects(api)),
    )


def _tasks_with_finalizers(api: client.ApiClient, namespace: str) -> list[str]:
    try:
        items = client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, Plural.TASKS
        )["items"]
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    return [t["metadata"]["name"] for t in items if t["metadata"].get("finalizers")]


def release_tasks(api: client.ApiClient, namespace: str) -> None:
    """Drop the finalizers of the namespace's AgentTasks (no operator watches it any more)."""
    custom = client.CustomObjectsApi(api)
    for name in _tasks_with_finalizers(api, namespace):
        with contextlib.suppress(ApiException):  # gone meanwhile
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, Plural.TASKS, name, {"metadata": {"finalizers": None}}
            )


def release_stuck(api: client.ApiClient) -> list[str]:
    """Let namespaces an earlier run left ``Terminating`` go; returns their names. Run
    when no operator of this run is up yet, and after the ``make dev`` one was stopped."""
    stuck = [
        name
        for name, ns in _namespaces(client.CoreV1Api(api)).items()
        if ns.metadata.deletion_timestamp is not None
    ]
    for name in stuck:
        release_tasks(api, name)
    return stuck


def wait_gone(core: client.CoreV1Api, names: set[str], timeout: float) -> set[str]:
    """Wait until none of the namespaces ``names`` exists (a watch, not a poll); returns
    those still there after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        listing = core.list_namespace()
        left = names & {ns.metadata.name for ns in listing.items}
        remaining = deadline - time.monotonic()
        if not left or remaining <= 0:
            return left
        stream = watch.Watch()
        with contextlib.suppress(ApiException):  # 410 Gone: list again
            for event in stream.stream(
                core.list_namespace,
                resource_version=listing.metadata.resource_version,
                timeout_seconds=max(1, int(remaining)),
                _request_timeout=remaining + 5,
            ):
                if event["type"] == "DELETED":
                    left.discard(event["object"].metadata.name)
                if not left:
                    stream.stop()
        if not left:
            return left


def _describe(api: client.ApiClient, ns: client.V1Namespace) -> str:
    name = ns.metadata.name
    if ns.metadata.deletion_timestamp is None:
        return f"namespace {name} (never deleted)"
    held = _tasks_with_finalizers(api, name)
    why = "; ".join(
        c.message for c in (ns.status.conditions or []) if c.status == "True" and c.message
    )
    tasks = f", AgentTasks with finalizers: {held[:5]}" if held else ""
    return f"namespace {name} stuck Terminating{tasks} ({why or 'no condition'})"


def leftovers(
    api: client.ApiClient, before: Baseline, operator_namespace: str, wait: float = WAIT_SECONDS
) -> list[str]:
    """What the run left that was not there when it started (empty when clean)."""
    core = client.CoreV1Api(api)
    now = _namespaces(core)
    kept = {name for name, ns in now.items() if ns.metadata.deletion_timestamp is None}
    new = set(now) - before.namespaces
    going = set(now) - kept
    left_ns = (new & kept) | (wait_gone(core, going, wait) if going else set())
    now = _namespaces(core)
    found = [_describe(api, now[name]) for name in sorted(left_ns) if name in now]
    found += [f"CredentialBackend {name}" for name in sorted(_backends(api) - before.backends)]
    # What a test made in a namespace it did not create (``default``, ``make dev``'s team-a).
    found += sorted(
        o for o in _objects(api) - before.objects if o.split(" ")[1].split("/")[0] in now
    )
    found += [
        f"lease record {operator_namespace}/{name}"
        for name in sorted(_records(core, operator_namespace) - before.records)
    ]
    return found


def forget(api: client.ApiClient, namespace: str, operator_namespace: str) -> None:
    """Before deleting a test's namespace once its operator stopped: release its tasks (or
    the namespace stays Terminating for good) and delete their lease records (no sweep
    of a later operator will find them: the tests' operators watch their own namespaces).
    The credentials behind those records end by their TTL in the testbed's servers."""
    release_tasks(api, namespace)
    client.CoreV1Api(api).delete_collection_namespaced_secret(
        operator_namespace,
        label_selector=f"{SESSION_SELECTOR},{Label.TASK_NAMESPACE}={namespace}",
    )


def live_children(ignore: set[int]) -> list[str]:
    """This process's children still running (zombies and ``ignore`` aside), as
    ``pid command``: what a test started and did not stop."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if int(fields[1]) == me and fields[0] != "Z" and pid not in ignore:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid} {command[:120]}")
    return found
