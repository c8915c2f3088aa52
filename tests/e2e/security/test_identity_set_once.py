"""Identity fixed at admission (issue 18, class 2): a tenant holding only the README's RBAC
cannot change whom a task acts as once it exists, and the operator never acts for a
changed identity even when an edit gets past the API server's rules.

* The hijack that got through before: a JSON patch removing ``serviceAccountName`` from
  a task, then a merge patch setting it to a privileged ServiceAccount; and setting it on
  a task created without one. Refused by the API server for a running (Active) task and
  for one still Pending, with a message a person understands; nothing written, the task
  keeps its identity. Ordinary updates (labels, ``completed: true``) are still admitted.
* With the CRD's rules removed the shipped admission policy alone refuses the edit; with
  its binding removed as well (both restored in a ``finally``) the hijack goes through
  the API server, and the operator ends the task ``Failed``/``IdentityChanged``: the
  lease is revoked at Vault, the Secret deleted, nothing issued for the new identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import MANAGED_SELECTOR, Reason
from support import vault
from support.credentials import own_db_role
from support.kube import GROUP, REPO, VERSION, wait_for
from support.operator import OperatorProcess
from support.scenario import Scenario
from support.tenant import grant_impersonation, wait_policy_enforced

pytestmark = pytest.mark.e2e
TENANT = "alice"  # the security suite's tenant (conftest.py)
AGENT = "agent"
PRIVILEGED = "platform-admin"  # a ServiceAccount the tenant may not act as
REFUSED_SA = "create a new AgentTask to run as another ServiceAccount"
REFUSED_CREDS = "create a new AgentTask for other credentials"
JSON_PATCH = "application/json-patch+json"
POLICY = "agentcred-task-serviceaccount"
TASKS_CRD = "agenttasks.agentcred.io"
SPEC_RULES = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/x-kubernetes-validations"


def tasks(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def create_task(api: client.ApiClient, ns: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AgentTask", "metadata": {"name": name}}
    tasks(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "agenttasks", {**body, "spec": spec}
    )


def patch(api: client.ApiClient, ns: str, name: str, body: Any, content_type: str = "") -> None:
    kw = {"_content_type": content_type} if content_type else {}
    tasks(api).patch_namespaced_custom_object(GROUP, VERSION, ns, "agenttasks", name, body, **kw)


def remove_account(api: client.ApiClient, ns: str, name: str) -> None:
    patch(api, ns, name, [{"op": "remove", "path": "/spec/serviceAccountName"}], JSON_PATCH)


def set_account(api: client.ApiClient, ns: str, name: str, account: str) -> None:
    patch(api, ns, name, {"spec": {"serviceAccountName": account}})


def refused(edit: Any, *args: Any) -> str:
    """Run an edit that must be refused; the API server's answer."""
    with pytest.raises(ApiException) as info:
        edit(*args)
    assert info.value.status in (403, 422), info.value.body
    return str(info.value.body)


def written(scene: Scenario, env: dict[str, str]) -> set[str]:
    """Every Secret the operator holds for this namespace: generated and lease records."""
    generated = scene.core.list_namespaced_secret(scene.ns, label_selector=MANAGED_SELECTOR).items
    records = scene.core.list_namespaced_secret(
        env["AGENTCRED_NAMESPACE"], label_selector=f"agentcred.io/task-namespace={scene.ns}"
    ).items
    return {s.metadata.name for s in [*generated, *records]}


def vault_credential(scene: Scenario, env: dict[str, str], name: str, account: str) -> str:
    """AgentCredential ``name`` for a database role of this test's own, through a Vault
    kubernetes-auth role bound to ``account``; returns the role's creds path (its leases
    are listed under it and nobody else's)."""
    db = own_db_role(env, default_ttl="1h", max_ttl="2h")
    role = vault.kubernetes_role(env, scene.ns, account, rules=db.rules)
    scene.credential(name, vault={"role": role, "dynamic": {"path": db.path}})
    return db.path


@pytest.mark.parametrize("phase", ["Active", "Pending"])
def test_a_tenant_cannot_change_whom_a_task_acts_as(
    scenario: Scenario,
    tenant: client.ApiClient,
    testbed_env: dict[str, str],
    phase: str,
) -> None:
    scene, ns = scenario, scenario.ns
    scene.service_account(AGENT)
    scene.service_account(PRIVILEGED)
    wait_for(lambda: _exists(scene, "default"), 60, "the namespace's default ServiceAccount")
    grant_impersonation(scene.api, ns, TENANT, [AGENT, "default"])
    paths: list[str] = []
    if phase == "Active":
        paths.append(vault_credential(scene, testbed_env, "db", AGENT))
        paths.append(vault_credential(scene, testbed_env, "dbd", "default"))
    # Pending: the AgentCredentials do not exist, the tasks wait (CredentialNotFound).
    create_task(tenant, ns, "named", {"serviceAccountName": AGENT, "credentials": [{"name": "db"}]})
    create_task(tenant, ns, "unset", {"credentials": [{"name": "dbd"}]})
    for name in ("named", "unset"):
        scene.wait_phase(name, phase)
        if phase == "Pending":
            scene.wait_condition(name, Reason.CREDENTIAL_NOT_FOUND)
    before = written(scene, testbed_env)
    assert len(before) == (4 if phase == "Active" else 0), before
    leases = {path: vault.leases(testbed_env, path + "/") for path in paths}
    assert all(len(ids) == 1 for ids in leases.values()), leases

    # The hijack: remove, then set a privileged account; set one where none was.
    assert REFUSED_SA in refused(remove_account, tenant, ns, "named")
    assert REFUSED_SA in refused(set_account, tenant, ns, "named", PRIVILEGED)
    assert REFUSED_SA in refused(set_account, tenant, ns, "unset", PRIVILEGED)
    assert REFUSED_SA in refused(set_account, tenant, ns, "unset", "default")
    # credentials are set once too: another Secret name, another credential, none.
    for creds in ([{"name": "db", "secretName": "kube-root-ca"}], [{"name": "db"}, {"name": "x"}]):
        assert REFUSED_CREDS in refused(
            patch, tenant, ns, "named", {"spec": {"credentials": creds}}
        )
    # Whoever makes it: the cluster admin's edit is refused as well.
    assert REFUSED_SA in refused(remove_account, scene.api, ns, "named")

    for name, account in (("named", AGENT), ("unset", None)):
        task = scene.get_task(name) or {}
        assert task["spec"].get("serviceAccountName") == account, task["spec"]
        assert task["metadata"]["generation"] == 1, "a refused edit changed the spec"
        status = task.get("status") or {}
        assert status.get("phase") == phase, status
        assert status["identity"]["serviceAccountName"] == (account or "default"), status
    assert written(scene, testbed_env) == before
    assert {path: vault.leases(testbed_env, path + "/") for path in paths} == leases

    # Ordinary updates by the tenant are still admitted.
    patch(tenant, ns, "named", {"metadata": {"labels": {"team": "a"}}})
    for name in ("named", "unset"):
        patch(tenant, ns, name, {"spec": {"completed": True}})
        scene.wait_phase(name, "Succeeded")
    wait_for(lambda: not written(scene, testbed_env), 30, "every Secret deleted at the end")


def _exists(scene: Scenario, account: str) -> bool:
    try:
        scene.core.read_namespaced_service_account(account, scene.ns)
    except ApiException:
        return False
    return True


@contextmanager
def rules_removed(kube: client.ApiClient, what: list[str], kubeconfig: str) -> Iterator[None]:
    """Remove the CRD's identity rules and/or the admission policy's binding for the
    duration of the block (a CRD installed without them, a cluster without the policy),
    and put them back as shipped however the block ends (the policy in effect again
    before the next test creates a task)."""
    ext = client.ApiextensionsV1Api(kube)
    admission = client.AdmissionregistrationV1Api(kube)
    try:
        if "crd" in what:
            ext.patch_custom_resource_definition(
                TASKS_CRD, [{"op": "remove", "path": SPEC_RULES}], _content_type=JSON_PATCH
            )
        if "policy" in what:
            admission.delete_validating_admission_policy_binding(POLICY)
        yield
    finally:
        if "policy" in what:
            docs = yaml.safe_load_all((REPO / "manifests/base/admission.yaml").read_text())
            binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
            try:
                admission.create_validating_admission_policy_binding(binding)
            except ApiException as exc:
                if exc.status != 409:
                    raise
            wait_policy_enforced(kube, kubeconfig)
        if "crd" in what:
            shipped = yaml.safe_load((REPO / "crds/agenttasks.yaml").read_text())
            current = ext.read_custom_resource_definition(TASKS_CRD)
            shipped["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(TASKS_CRD, shipped)


def enforced_again(scene: Scenario, name: str) -> bool:
    """The API server refuses an identity edit again (dry run: nothing changes)."""
    try:
        tasks(scene.api).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            scene.ns,
            "agenttasks",
            name,
            {"spec": {"serviceAccountName": "someone-else"}},
            dry_run="All",
        )
    except ApiException as exc:
        return exc.status == 422 and REFUSED_SA in str(exc.body)
    return False


def test_the_operator_never_acts_for_a_changed_identity(
    scenario: Scenario,
    tenant: client.ApiClient,
    operator: OperatorProcess,
    testbed_env: dict[str, str],
    kube: client.ApiClient,
) -> None:
    scene, ns = scenario, scenario.ns
    scene.service_account(AGENT)
    scene.service_account(PRIVILEGED)
    grant_impersonation(scene.api, ns, TENANT, [AGENT])
    agent_path = vault_credential(scene, testbed_env, "db", AGENT)
    # The privileged account's own database role: what the hijack was after.
    privileged_path = vault_credential(scene, testbed_env, "admin-db", PRIVILEGED)
    create_task(tenant, ns, "t", {"serviceAccountName": AGENT, "credentials": [{"name": "db"}]})
    status = scene.wait_phase("t", "Active")
    assert status["identity"] == {"serviceAccountName": AGENT, "credentials": [{"name": "db"}]}
    assert scene.read_secret("t-db") is not None
    assert len(vault.leases(testbed_env, agent_path + "/")) == 1

    try:
        with rules_removed(kube, ["crd"], testbed_env["KUBECONFIG"]):
            # The CRD without its rules: the shipped admission policy alone refuses.
            def policy_refuses() -> bool:
                try:
                    remove_account(tenant, ns, "t")
                except ApiException as exc:  # the CRD's own refusal until its rules are gone
                    return "ValidatingAdmissionPolicy" in str(exc.body) and REFUSED_SA in str(
                        exc.body
                    )
                raise AssertionError("the identity edit was admitted with the policy in place")

            wait_for(policy_refuses, 30, "the policy to refuse the edit on its own")
            with rules_removed(kube, ["policy"], testbed_env["KUBECONFIG"]):
                # Neither guard: the hijack of issue 18 reaches the object.
                wait_for(lambda: _admitted(remove_account, tenant, ns, "t"), 30, "edit admitted")
                set_account(tenant, ns, "t", PRIVILEGED)
    finally:
        wait_for(lambda: enforced_again(scene, "t"), 60, "the rules to be enforced again")

    status = scene.wait_phase("t", "Failed")
    assert status["reason"] == Reason.IDENTITY_CHANGED, status
    assert "first issued as 'agent'" in status["message"], status
    assert status["identity"]["serviceAccountName"] == AGENT, "the record was rewritten"
    wait_for(lambda: scene.read_secret("t-db") is None, 30, "the Secret deleted")
    wait_for(lambda: not vault.leases(testbed_env, agent_path + "/"), 30, "the lease revoked")
    wait_for(lambda: not written(scene, testbed_env), 30, "the lease record gone")
    # Nothing for the new identity: no lease of its role, no issue as it.
    assert vault.leases(testbed_env, privileged_path + "/") == []
    acted = [
        r
        for r in operator.records()
        if r.get("service_account") == PRIVILEGED and r.get("outcome") == "success"
    ]
    assert acted == [], acted


def _admitted(edit: Any, *args: Any) -> bool:
    try:
        edit(*args)
    except ApiException as exc:
        if exc.status in (403, 422):
            return False
        raise
    return True
