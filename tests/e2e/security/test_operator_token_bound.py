"""The operator's own identity is bounded (issue 18, class 5): with the shipped manifests
applied, a TokenRequest made *as the operator's ServiceAccount* for a ServiceAccount in a
namespace it never serves (kube-system, ...), for an audience outside the configured list
or for longer than the configured maximum is denied by the API server; the requests the
operator really makes (an agent's ServiceAccount in a served namespace, audience ``vault``
or ``sts.amazonaws.com``, 600 s) are allowed. Nobody else's requests are affected.

The requests are made by the admin's client impersonating
``system:serviceaccount:agentcred-system:agentcred`` (what ``kubectl --as`` does): the API
server authorizes and admits them exactly as the operator's own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from support.kube import REPO, wait_for
from support.tenant import as_user

pytestmark = pytest.mark.e2e
OPERATOR = "system:serviceaccount:agentcred-system:agentcred"
POLICY = REPO / "manifests" / "base" / "operator-token-policy.yaml"
RBAC = REPO / "manifests" / "base" / "rbac.yaml"
AGENT = "agent"


def apply(env: dict[str, str], path: Path) -> None:
    kubectl = [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"]]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def as_operator(
    kube: client.ApiClient, testbed_env: dict[str, str], tmp_path: Path
) -> Iterator[client.ApiClient]:
    """The shipped token policy and the operator's shipped cluster-wide RBAC (so that only
    admission, not authorization, can say no), and a client acting as the operator."""
    apply(testbed_env, POLICY)
    cluster_wide = [
        d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"].startswith("Cluster")
    ]
    rbac = tmp_path / "cluster-rbac.yaml"
    rbac.write_text(yaml.safe_dump_all(cluster_wide))
    apply(testbed_env, rbac)
    api = as_user(testbed_env["KUBECONFIG"], OPERATOR)
    yield api
    api.close()


def token(api: client.ApiClient, ns: str, account: str, spec: dict[str, Any]) -> str:
    review = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, ns, {"spec": spec}
    )
    return str(review.status.token)


def denied(api: client.ApiClient, ns: str, account: str, spec: dict[str, Any]) -> str:
    """A request that admission must deny; the API server's message."""
    with pytest.raises(ApiException) as info:
        token(api, ns, account, spec)
    body = str(info.value.body)
    assert info.value.status == 403, body
    assert "agentcred-operator-tokens" in body, f"not denied by the policy: {body}"
    return body


def test_the_operator_may_request_only_the_tokens_it_needs(
    as_operator: client.ApiClient, kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": AGENT}})
    ok = {"audiences": ["vault"], "expirationSeconds": 600}
    # The policy takes effect within moments of being applied: probe with a request that
    # is harmless either way (an agent's token for an audience nobody accepts).
    wait_for(
        lambda: _denied(
            as_operator, namespace, {"audiences": ["nobody"], "expirationSeconds": 600}
        ),
        30,
        "the operator token policy to take effect",
    )

    # What the operator does: an agent's token in a served namespace, for a backend.
    assert token(as_operator, namespace, AGENT, ok)
    assert token(as_operator, namespace, AGENT, {**ok, "audiences": ["sts.amazonaws.com"]})

    # Namespaces it never serves: a kube-system token is cluster-admin.
    for ns in ("kube-system", "kube-public", "kube-node-lease", "agentcred-system"):
        assert "never serves that namespace" in denied(as_operator, ns, "default", ok)
    # Audiences outside the list, none at all (the Kubernetes API's own), or one too many.
    for audiences in (["https://kubernetes.default.svc"], [], ["vault", "attacker"]):
        spec = {**ok, "audiences": audiences} if audiences else {"expirationSeconds": 600}
        assert "audiences" in denied(as_operator, namespace, AGENT, spec)
    # Longer than the maximum, or unset (the API server's default is an hour).
    assert "at most 600 seconds" in denied(
        as_operator, namespace, AGENT, {**ok, "expirationSeconds": 3600}
    )
    assert "at most 600 seconds" in denied(as_operator, namespace, AGENT, {"audiences": ["vault"]})

    # Nobody else is bound by it: the admin's own request passes.
    assert token(kube, namespace, AGENT, {"audiences": ["anything"], "expirationSeconds": 3600})


def _denied(api: client.ApiClient, ns: str, spec: dict[str, Any]) -> bool:
    try:
        token(api, ns, AGENT, spec)
    except ApiException as exc:
        return exc.status == 403 and "agentcred-operator-tokens" in str(exc.body)
    return False
