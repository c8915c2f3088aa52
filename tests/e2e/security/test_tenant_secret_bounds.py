"""What ``agentcred-tenant`` lets a tenant do through the operator (README, "RBAC to
grant"): have it create a Secret of a chosen name with literal content in its own
namespace. The bounds the README states hold: the Secret is always ``Opaque`` (a literal
``.dockerconfigjson`` does not make an image-pull Secret), in the task's namespace,
labelled and owned as agentcred's; a Secret of that name someone else made is never
overwritten or adopted, whatever its type."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes import client

from agentcred.models.api_names import Label, Reason
from support import vault
from support.credentials import kv_rules
from support.kube import GROUP, VERSION
from support.scenario import Scenario
from support.tenant import grant_impersonation

pytestmark = pytest.mark.e2e
AGENT = "agent"
# Literal text: no issued field in it (spaced so that no "}}" reads as a placeholder's end).
PULL = '{"auths": {"registry.example": {"auth": "dGVuYW50OndyaXR0ZW4="} } }'


def tenant_object(
    api: client.ApiClient, ns: str, kind: str, name: str, spec: dict[str, Any]
) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, kind.lower() + "s", {**body, "spec": spec}
    )


def test_a_tenant_chosen_secret_is_opaque_in_its_namespace_and_never_someone_elses(
    scenario: Scenario, tenant: client.ApiClient, testbed_env: dict[str, str]
) -> None:
    scene, ns = scenario, scenario.ns
    path = f"{ns}/llm"
    vault.admin(testbed_env).secrets.kv.v2.create_or_update_secret(path=path, secret={"k": "v1"})
    scene.values.add("v1")
    scene.service_account(AGENT)
    role = vault.kubernetes_role(testbed_env, ns, AGENT, rules=kv_rules(path))
    grant_impersonation(scene.api, ns, "alice", [AGENT])
    backend = scene.backend("vault")
    # Someone else's image-pull Secret, under the name the tenant will ask for.
    scene.core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": "{}"},
        },
    )
    tenant_object(
        tenant,
        ns,
        "AgentCredential",
        "kv",
        {
            "backendRef": {"name": backend},
            "vault": {"role": role, "kv": {"path": path}},
            "template": {".dockerconfigjson": PULL},  # literal text, no issued field
        },
    )
    for task, secret in (("taken", "pull"), ("fresh", "my-pull")):
        tenant_object(
            tenant,
            ns,
            "AgentTask",
            task,
            {"serviceAccountName": AGENT, "credentials": [{"name": "kv", "secretName": secret}]},
        )

    scene.wait_condition("taken", Reason.SECRET_CONFLICT)
    theirs = scene.secret_object("pull")
    assert theirs.type == "kubernetes.io/dockerconfigjson"
    assert base64.b64decode(theirs.data[".dockerconfigjson"]) == b"{}"
    assert not theirs.metadata.owner_references

    scene.wait_phase("fresh", "Active")
    mine = scene.secret_object("my-pull")
    assert mine.type == "Opaque"
    assert mine.metadata.namespace == ns
    assert mine.metadata.labels[Label.MANAGED_BY] == "agentcred"
    [owner] = mine.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("AgentTask", "fresh", True)
    assert base64.b64decode(mine.data[".dockerconfigjson"]).decode() == PULL
