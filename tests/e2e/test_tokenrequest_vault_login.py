"""The agent's own identity: a TokenRequest token of a ServiceAccount logs in to OpenBao.

OpenBao validates it through TokenReview against the local kube-apiserver, exactly
as a production Vault validates tokens of a real cluster.
"""

from __future__ import annotations

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest
from kubernetes import client

pytestmark = pytest.mark.e2e


def request_token(kube: client.ApiClient, namespace: str, sa: str, audience: str) -> str:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": sa}})
    review = core.create_namespaced_service_account_token(
        sa, namespace, {"spec": {"audiences": [audience], "expirationSeconds": 600}}
    )
    token: str = review.status.token
    return token


def test_tokenrequest_issues_a_token_for_the_service_account(
    kube: client.ApiClient, namespace: str
) -> None:
    token = request_token(kube, namespace, "research-agent", "vault")
    review = client.AuthenticationV1Api(kube).create_token_review(
        {"spec": {"token": token, "audiences": ["vault"]}}
    )
    assert review.status.authenticated
    assert review.status.user.username == f"system:serviceaccount:{namespace}:research-agent"


def test_openbao_kubernetes_auth_accepts_the_agent_token(
    kube: client.ApiClient, namespace: str, testbed_env: dict[str, str]
) -> None:
    vault = hvac.Client(url=testbed_env["VAULT_ADDR"], token=testbed_env["VAULT_TOKEN"])
    vault.write(
        f"auth/kubernetes/role/{namespace}",
        bound_service_account_names="research-agent",
        bound_service_account_namespaces=namespace,
        audience="vault",
        token_policies="default",
        token_ttl="5m",
    )
    token = request_token(kube, namespace, "research-agent", "vault")
    agent = hvac.Client(url=testbed_env["VAULT_ADDR"])
    login = agent.auth.kubernetes.login(role=namespace, jwt=token)
    assert login["auth"]["client_token"]
    assert login["auth"]["metadata"]["service_account_name"] == "research-agent"
    assert login["auth"]["metadata"]["service_account_namespace"] == namespace


def test_openbao_refuses_a_service_account_the_role_does_not_bind(
    kube: client.ApiClient, namespace: str, testbed_env: dict[str, str]
) -> None:
    vault = hvac.Client(url=testbed_env["VAULT_ADDR"], token=testbed_env["VAULT_TOKEN"])
    vault.write(
        f"auth/kubernetes/role/{namespace}",
        bound_service_account_names="someone-else",
        bound_service_account_namespaces=namespace,
        audience="vault",
        token_policies="default",
    )
    token = request_token(kube, namespace, "research-agent", "vault")
    with pytest.raises((Forbidden, InvalidRequest)):
        hvac.Client(url=testbed_env["VAULT_ADDR"]).auth.kubernetes.login(role=namespace, jwt=token)
