"""Approval against the real API server and operator (docs/approval.md), as impersonated
users with the shipped roles: ``alice`` (agentcred-tenant, may start tasks as ``agent``),
``bob`` (agentcred-approver), ``carol`` (agentcred-tenant, and agentcred-approver through
a RoleBinding only).

* approved with ``kubectl agentcred approve`` as bob, the task goes Active, with bob and
  his reason on its status; denied, it fails ``ApprovalDenied``; nothing is issued while
  it waits (no Secret);
* carol may create approvals in the namespace but holds no ``approve`` on the backend (a
  RoleBinding cannot grant it): refused at admission; alice, who created the task and
  holds ``approve`` too, is ignored (``SelfApproval``) and the task times out
  (``ApprovalTimedOut``) on a backend with a short timeout;
* forged stamps: a task created with someone else's ``created-by``, an approval with
  someone else's ``approved-by``, and edits of either, even by the cluster admin;
* an edit of an approved task voids the approval: ``Failed``/``ApprovalVoided``, the
  Secret deleted.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import Annotation, Plural, Reason
from agentcred.plugin import main as plugin_main
from agentcred.plugin.api import EXIT_FORBIDDEN
from support.credentials import vault_database
from support.kube import GROUP, VERSION, wait_for
from support.scenario import Scenario
from support.tenant import as_user, grant_impersonation, grant_tenant

pytestmark = pytest.mark.e2e
CREATOR = "alice"  # the security suite's tenant (conftest.py)


@pytest.fixture
def people(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> Iterator[dict[str, client.ApiClient]]:
    """alice (tenant + approver: she can try to approve her own task), bob (approver) and
    carol (tenant only), each an impersonated client; user names unique to the test."""
    ns, kube = scenario.ns, scenario.api
    suffix = uuid.uuid4().hex[:6]
    bob, carol = f"bob-{suffix}", f"carol-{suffix}"
    grant_impersonation(kube, ns, CREATOR, ["agent"])
    grant_tenant(kube, ns, carol)
    rbac = client.RbacAuthorizationV1Api(kube)
    # carol may create approvals in the namespace (the approver role through a RoleBinding)
    # but holds no approve on any CredentialBackend: a namespaced grant cannot give it.
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "carol-approvals"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "agentcred-approver",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": carol}],
        },
    )
    binding = f"{ns}-approvers"
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": binding},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "agentcred-approver",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                for user in (CREATOR, bob)
            ],
        }
    )
    users = {"alice": tenant, "bob": as_user(testbed_env["KUBECONFIG"], bob)}
    users["carol"] = as_user(testbed_env["KUBECONFIG"], carol)
    users["bob"].user = bob  # type: ignore[attr-defined]
    users["carol"].user = carol  # type: ignore[attr-defined]
    try:
        wait_for(lambda: _may_approve(users["bob"], ns), 30, "bob's ClusterRoleBinding")
        yield users
    finally:
        rbac.delete_cluster_role_binding(binding)
        users["bob"].close()
        users["carol"].close()


def _may_approve(api: client.ApiClient, ns: str) -> bool:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "group": GROUP,
                    "resource": "credentialbackends",
                    "verb": "approve",
                }
            }
        }
    )
    return bool(review.status.allowed)


def gated_backend(scene: Scenario, env: dict[str, str], timeout: str = "10m") -> str:
    backend = scene.backend(
        "vault", suffix="-appr", approval={"required": True, "timeout": timeout}
    )
    vault_database(scene, env, backend=backend)
    return backend


def start(api: client.ApiClient, scene: Scenario, name: str, **meta: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentTask",
        "metadata": {"name": name, **meta},
        "spec": {"serviceAccountName": "agent", "credentials": [{"name": "db"}]},
    }
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, scene.ns, Plural.TASKS, body
    )
    return created


def waiting(scene: Scenario, name: str) -> dict[str, Any]:
    scene.wait_condition(name, Reason.AWAITING_APPROVAL)
    assert scene.read_secret(f"{name}-db") is None  # nothing issued while it waits
    return scene.status(name)


def plugin_run(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str
) -> tuple[int, str, str]:
    """``kubectl agentcred ARGV`` in-process (its ``main``), with the testbed's kubeconfig."""
    monkeypatch.setenv("KUBECONFIG", env["KUBECONFIG"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = plugin_main.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def approvals(scene: Scenario) -> dict[str, dict[str, Any]]:
    listed = scene.custom.list_namespaced_custom_object(GROUP, VERSION, scene.ns, Plural.APPROVALS)
    return {a["spec"]["taskRef"]["name"]: a for a in listed["items"]}


def create_approval(
    api: client.ApiClient, scene: Scenario, task: str, backend: str, **meta: Any
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentTaskApproval",
        "metadata": {"generateName": f"{task}-", **meta},
        "spec": {"taskRef": {"name": task}, "credentialBackend": backend, "decision": "Approved"},
    }
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, scene.ns, Plural.APPROVALS, body
    )
    return created


def test_approved_with_the_plugin_it_runs_denied_it_fails(
    scenario: Scenario,
    people: dict[str, client.ApiClient],
    testbed_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scene, bob = scenario, people["bob"].user  # type: ignore[attr-defined]
    backend = gated_backend(scene, testbed_env)
    start(people["alice"], scene, "yes")
    start(people["alice"], scene, "no")
    status = waiting(scene, "yes")
    assert status["approval"]["backends"] == [backend]
    assert Reason.AWAITING_APPROVAL in scene.event_reasons("yes")

    code, out, err = plugin_run(
        monkeypatch, testbed_env, "approve", "yes", "-n", scene.ns, "--as", bob, "--reason", "CHG-1"
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"agenttaskapproval {scene.ns}/yes-approved-")
    assert out.rstrip().endswith(f"created: Approved yes for CredentialBackend {backend}")
    status = scene.wait_phase("yes", "Active")
    assert scene.read_secret("yes-db") is not None
    assert status["approval"]["decisions"] == [
        {
            "approval": approvals(scene)["yes"]["metadata"]["name"],
            "backend": backend,
            "approver": bob,
            "decision": "Approved",
            "reason": "CHG-1",
        }
    ]
    made = approvals(scene)["yes"]
    assert made["metadata"]["annotations"][Annotation.APPROVED_BY] == bob
    assert made["status"]["state"] == "Applied"

    waiting(scene, "no")
    code, out, err = plugin_run(
        monkeypatch, testbed_env, "deny", "no", "-n", scene.ns, "--as", bob, "--reason", "freeze"
    )
    assert code == 0, err
    status = scene.wait_phase("no", "Failed")
    assert status["reason"] == Reason.APPROVAL_DENIED and "freeze" in status["message"]
    assert scene.read_secret("no-db") is None


def test_only_someone_else_holding_approve_counts_and_stamps_cannot_be_forged(
    scenario: Scenario,
    people: dict[str, client.ApiClient],
    testbed_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scene, alice = scenario, people["alice"]
    carol = people["carol"].user  # type: ignore[attr-defined]
    backend = gated_backend(scene, testbed_env, timeout="15s")
    # A forged creator is overwritten by the API server with the requester.
    forged = {"annotations": {Annotation.CREATED_BY.value: people["bob"].user}}  # type: ignore[attr-defined]
    task = start(alice, scene, "mine", **forged)
    assert task["metadata"]["annotations"][Annotation.CREATED_BY] == CREATOR
    waiting(scene, "mine")

    # carol (no approve on the backend) is refused at admission; nothing is created.
    code, _, err = plugin_run(
        monkeypatch, testbed_env, "approve", "mine", "-n", scene.ns, "--as", carol
    )
    assert code == EXIT_FORBIDDEN and "may not approve for CredentialBackend" in err
    assert approvals(scene) == {}

    # alice may approve, but not her own task: admitted, ignored; the task waits on.
    made = create_approval(
        alice, scene, "mine", backend, annotations={Annotation.APPROVED_BY.value: "bob"}
    )
    assert made["metadata"]["annotations"][Annotation.APPROVED_BY] == CREATOR  # stamped
    judged = wait_for(
        lambda: (
            (approvals(scene)["mine"].get("status") or {}).get("state") == "Ignored"
            and approvals(scene)["mine"]["status"]
        ),
        30,
        "the self-approval judged",
    )
    assert judged["reason"] == "SelfApproval"

    # Neither stamp can be edited afterwards, not even by the cluster admin.
    for plural, name, key in (
        (Plural.TASKS, "mine", Annotation.CREATED_BY),
        (Plural.APPROVALS, made["metadata"]["name"], Annotation.APPROVED_BY),
    ):
        with pytest.raises(ApiException) as info:
            scene.custom.patch_namespaced_custom_object(
                GROUP, VERSION, scene.ns, plural, name, {"metadata": {"annotations": {key: "x"}}}
            )
        assert info.value.status in (403, 422) and "set once" in str(info.value.body)

    # Nobody else approved within the backend's 15 s: timed out, nothing issued.
    status = scene.wait_phase("mine", "Failed", timeout=40)
    assert status["reason"] == Reason.APPROVAL_TIMED_OUT
    assert scene.read_secret("mine-db") is None


def test_an_edit_after_the_approval_voids_it(
    scenario: Scenario,
    people: dict[str, client.ApiClient],
    testbed_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scene, bob = scenario, people["bob"].user  # type: ignore[attr-defined]
    gated_backend(scene, testbed_env)
    start(people["alice"], scene, "edited")
    waiting(scene, "edited")
    code, _, err = plugin_run(
        monkeypatch, testbed_env, "approve", "edited", "-n", scene.ns, "--as", bob
    )
    assert code == 0, err
    scene.wait_phase("edited", "Active")
    client.CustomObjectsApi(people["alice"]).patch_namespaced_custom_object(
        GROUP, VERSION, scene.ns, Plural.TASKS, "edited", {"spec": {"activeDeadlineSeconds": 86400}}
    )
    status = scene.wait_phase("edited", "Failed")
    assert status["reason"] == Reason.APPROVAL_VOIDED
    assert scene.read_secret("edited-db") is None
    assert approvals(scene)["edited"]["status"]["state"] == "Voided"
