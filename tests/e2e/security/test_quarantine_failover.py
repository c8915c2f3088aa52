"""A quarantine holds across a leader failover (issue 20's proof, the HA part).

Two operator processes out of cluster, leader election on (a Lease of this test's own in
the operator namespace, short durations, so that a SIGKILLed leader's Lease runs out in
about 3 s), both watching only the test's namespace; the incident responder holds only
agentcred-incident-responder and creates the quarantine with their own credentials.

1. The leader is SIGKILLed the moment a new task's write-ahead lease record appears (its
   issuance half-done); while the Lease still names the dead leader, the responder
   quarantines the agent's ServiceAccount and a matching task arrives. The standby takes
   over and enforces it: exactly the matching tasks end Failed/Quarantined, Secrets
   deleted, roles refused at PostgreSQL, leases gone at Vault, no lease record left (the
   half-done one included); the spared task keeps working; new matching tasks get
   nothing; ``kubectl agentcred lift`` lets a new one through, issued by the new leader.
2. The leader is SIGKILLed in the middle of an enforcement (right after it deleted the
   first matched task's Secret): the standby finishes it, with the same checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from agentcred.models.api_names import GROUP, VERSION, Annotation, Label, Plural, Reason
from support import postgres, vault
from support.credentials import DbRole, own_db_role, vault_database
from support.kube import wait_for
from support.leaks import assert_no_leaks
from support.operator import OperatorProcess, operator_env, running_operator
from support.plugin import User
from support.scenario import Scenario

pytestmark = pytest.mark.e2e

# client-go's three durations, short: a SIGKILLed leader's Lease expires in 3 s.
ELECTION = {
    "AGENTCRED_LEADER_ELECTION": "true",
    "AGENTCRED_LEADER_ELECTION_LEASE_DURATION": "3s",
    "AGENTCRED_LEADER_ELECTION_RENEW_DEADLINE": "2s",
    "AGENTCRED_LEADER_ELECTION_RETRY_PERIOD": "500ms",
}


def logged(op: OperatorProcess, text: str) -> bool:
    return any(text in line for line in op.log_lines())


def holder(kube: client.ApiClient, namespace: str, name: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(kube).read_namespaced_lease(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity or "") or None


def complete(kube: client.ApiClient, name: str) -> bool:
    body = client.CustomObjectsApi(kube).get_cluster_custom_object(
        GROUP, VERSION, Plural.QUARANTINES, name
    )
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


def kill_when(
    leader: OperatorProcess,
    what: str,
    action: Callable[[], object],
    seen: Callable[[dict[str, Any]], bool],
    lister: Callable[..., Any],
    *args: str,
    **params: str,
) -> None:
    """Do ``action`` and SIGKILL ``leader`` the moment a watch on ``lister(*args,
    **params)`` (Secrets of a namespace) shows an event ``seen`` matches."""
    listed = lister(*args, **params)
    stream = watch.Watch()
    killed = False
    action()
    for event in stream.stream(
        lister,
        *args,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=15,
        **params,
    ):
        if seen(event):
            leader.proc.kill()
            killed = True
            stream.stop()
    leader.kill()  # reap it (or end it, when the event never came)
    assert killed, f"{what} never happened"


def db_users(env: dict[str, str], stem: str) -> set[str]:
    """PostgreSQL roles Vault made for the database role whose name starts with ``stem``."""
    with postgres.superuser(env) as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"v-%-{stem}-%",)
        ).fetchall()
    return {str(row[0]) for row in rows}


def record_names(core: client.CoreV1Api, own: str, namespace: str) -> dict[str, str]:
    """The lease-record Secrets of the namespace's tasks: task name -> Secret name."""
    selector = f"{Label.SESSION}=true,{Label.TASK_NAMESPACE}={namespace}"
    found = core.list_namespaced_secret(own, label_selector=selector).items
    return {
        (s.metadata.annotations or {}).get(Annotation.TASK_NAME, ""): s.metadata.name for s in found
    }


@pytest.fixture
def pair(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    namespace: str,
    crds: None,
    tmp_path: Path,
) -> Iterator[tuple[OperatorProcess, OperatorProcess, str]]:
    """Two operators competing for one Lease (named after the test's namespace, in the
    operator namespace); ``first`` leads, ``second`` stands by. Yields them and the
    Lease's name; deletes the Lease afterwards."""
    own = testbed_env["AGENTCRED_NAMESPACE"]
    lease = f"{namespace}-leader"
    env = {**operator_env(testbed_env), **ELECTION, "AGENTCRED_LEADER_ELECTION_LEASE_NAME": lease}
    args = ("--namespace", namespace)
    try:
        with running_operator(env, tmp_path / "first.log", *args) as first:
            wait_for(lambda: logged(first, "acquired leadership"), 30, "the first to lead")
            with running_operator(env, tmp_path / "second.log", *args) as second:
                wait_for(lambda: logged(second, "standing by"), 30, "the second to stand by")
                yield first, second, lease
    finally:
        coordination = client.CoordinationV1Api(kube)
        try:
            coordination.delete_namespaced_lease(lease, own)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@dataclass
class Incident:
    """Two agents' tasks, issued by the leader from a database role of the test's own
    (every lease under its path at Vault, every PostgreSQL role Vault made for it, is
    this test's): ``hit-a`` and ``hit-b`` run as ServiceAccount ``agent`` (the one to be
    quarantined), ``spared`` as ``other``."""

    kube: client.ApiClient
    env: dict[str, str]
    scene: Scenario
    role: DbRole
    hit: list[dict[str, str]]
    spared_lease: str
    spared: dict[str, str]

    @property
    def stem(self) -> str:  # Vault's username template keeps 8 characters of the role
        return self.role.path.rsplit("/", 1)[1][:8]

    def quarantine(self, responder: User) -> str:
        """The responder quarantines ServiceAccount ``agent`` (an API call as that person)."""
        name = f"{self.scene.ns}-agent"
        with config.new_client_from_config(config_file=str(responder.kubeconfig)) as api:
            client.CustomObjectsApi(api).create_cluster_custom_object(
                GROUP,
                VERSION,
                Plural.QUARANTINES,
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "CredentialQuarantine",
                    "metadata": {"name": name},
                    "spec": {
                        "reason": "prompt injection",
                        "serviceAccounts": [f"{self.scene.ns}/agent"],
                    },
                },
            )
        return name

    def assert_enforced(self, name: str, ended: list[str]) -> None:
        """Exactly ``ended`` ended Failed/Quarantined with their Secrets gone, their roles
        refused at PostgreSQL; no lease record, Vault lease or PostgreSQL role is left but
        the spared task's, which still logs in."""
        scene, env, own = self.scene, self.env, self.env["AGENTCRED_NAMESPACE"]
        core = client.CoreV1Api(self.kube)
        message = f"CredentialQuarantine {name}: prompt injection"
        for task in ended:
            status = scene.wait_phase(task, "Failed", 15)
            assert status["reason"] == Reason.QUARANTINED and message in status["message"]
            assert scene.read_secret(f"{task}-db") is None
        for data in self.hit:
            postgres.wait_refused(env, data, 15, "a quarantined task's role refused")
        wait_for(
            lambda: set(record_names(core, own, scene.ns)) == {"spared"},
            15,
            "only the spared task's lease record",
            describe=lambda: record_names(core, own, scene.ns),
        )
        prefix = f"{self.role.path}/"
        wait_for(
            lambda: {prefix + k for k in vault.leases(env, prefix)} == {self.spared_lease},
            15,
            "only the spared task's lease at Vault",
            describe=lambda: vault.leases(env, prefix),
        )
        wait_for(
            lambda: db_users(env, self.stem) == {self.spared["username"]},
            15,
            "only the spared task's role at PostgreSQL",
            describe=lambda: db_users(env, self.stem),
        )
        body = client.CustomObjectsApi(self.kube).get_cluster_custom_object(
            GROUP, VERSION, Plural.QUARANTINES, name
        )
        assert sorted(body["status"]["tasks"]) == [f"{scene.ns}/{t}" for t in sorted(ended)]
        assert scene.status("spared")["phase"] == "Active"
        assert postgres.can_login(env, self.spared["username"], self.spared["password"])

    def end_the_rest(self, *tasks: str) -> None:
        """Complete what is left: the leader revokes it, no role of the test's remains."""
        for task in tasks:
            self.scene.patch_task(task, {"completed": True})
        for task in tasks:
            self.scene.wait_phase(task, "Succeeded", 15)
        wait_for(lambda: not db_users(self.env, self.stem), 15, "no role of the test's left")


@pytest.fixture
def incident(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    namespace: str,
    pair: tuple[OperatorProcess, OperatorProcess, str],
) -> Incident:
    """Issued by the leader of ``pair``."""
    scene = Scenario(kube, namespace)
    role = own_db_role(testbed_env, default_ttl="10m", max_ttl="1h")
    agent = vault_database(scene, testbed_env, "db", account="agent", db_role=role)
    other = vault_database(scene, testbed_env, "db2", account="other", db_role=role)
    hit = [scene.issue(t, "db", serviceAccountName=agent)[1] for t in ("hit-a", "hit-b")]
    spared_status, spared = scene.issue("spared", "db2", serviceAccountName=other)
    lease = spared_status["credentials"][0]["leaseId"]
    return Incident(kube, testbed_env, scene, role, hit, lease, spared)


def test_the_standby_enforces_a_quarantine_created_while_the_leader_was_down(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    pair: tuple[OperatorProcess, OperatorProcess, str],
    incident: Incident,
    responder: User,
) -> None:
    first, second, lease = pair
    scene, own = incident.scene, testbed_env["AGENTCRED_NAMESPACE"]
    old = holder(kube, own, lease)
    assert old is not None and not logged(second, "acquired leadership")

    # The leader is SIGKILLed the moment the task's write-ahead lease record appears: in
    # the middle of its issuance (logged in at Vault; the lease issued or not yet).
    kill_when(
        first,
        "inflight's lease record",
        lambda: scene.task("inflight", ["db"], serviceAccountName="agent"),
        lambda e: (e["object"].metadata.annotations or {}).get(Annotation.TASK_NAME) == "inflight",
        client.CoreV1Api(kube).list_namespaced_secret,
        own,
        label_selector=f"{Label.SESSION}=true,{Label.TASK_NAMESPACE}={scene.ns}",
    )
    # The quarantine arrives while no replica leads: the Lease still names the dead one.
    name = incident.quarantine(responder)
    scene.task("during", ["db"], serviceAccountName="agent")  # matching, before any leader
    assert holder(kube, own, lease) == old and not logged(second, "acquired leadership")
    wait_for(lambda: complete(kube, name), 30, "the quarantine enforced by the new leader")

    # The standby took over and enforced it, the half-done issuance included.
    assert logged(second, "acquired leadership")
    assert holder(kube, own, lease) not in (None, old)
    incident.assert_enforced(name, ["during", "hit-a", "hit-b", "inflight"])

    scene.task("again", ["db"], serviceAccountName="agent")  # refused before any backend call
    for task in ("during", "again"):
        status = scene.wait_phase(task, "Failed", 15)
        assert status["reason"] == Reason.QUARANTINED
        assert not status.get("credentials"), task  # nothing was ever issued for it

    lifted = responder.run("lift", name)
    assert lifted.returncode == 0, lifted.stderr
    wait_for(lambda: logged(second, f"CredentialQuarantine {name} lifted"), 15, "lifted")
    _, after = scene.issue("after", "db", serviceAccountName="agent")
    assert postgres.can_login(testbed_env, after["username"], after["password"])
    assert scene.status("hit-a")["phase"] == "Failed"  # nothing re-issued for what it ended
    incident.end_the_rest("spared", "after")
    assert_no_leaks(scene, [first, second])


def test_the_standby_finishes_an_enforcement_the_leader_died_in(
    kube: client.ApiClient,
    testbed_env: dict[str, str],
    pair: tuple[OperatorProcess, OperatorProcess, str],
    incident: Incident,
    responder: User,
) -> None:
    first, second, lease = pair
    own = testbed_env["AGENTCRED_NAMESPACE"]
    old = holder(kube, own, lease)
    names: list[str] = []
    # The leader enforces it and is SIGKILLed the moment it deleted the first task's
    # Secret: the other task untouched, no status written yet.
    kill_when(
        first,
        "a quarantined task's Secret deleted",
        lambda: names.append(incident.quarantine(responder)),
        lambda e: e["type"] == "DELETED" and e["object"].metadata.name in {"hit-a-db", "hit-b-db"},
        client.CoreV1Api(kube).list_namespaced_secret,
        incident.scene.ns,
    )
    name = names[0]
    assert not complete(kube, name)

    wait_for(lambda: complete(kube, name), 30, "the new leader to finish the enforcement")
    assert holder(kube, own, lease) not in (None, old)
    incident.assert_enforced(name, ["hit-a", "hit-b"])
    incident.end_the_rest("spared")
    assert_no_leaks(incident.scene, [first, second])
