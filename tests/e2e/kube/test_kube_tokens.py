"""TokenRequest: a token the API server itself authenticates as the agent's ServiceAccount."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes_asyncio.client import ApiClient

from agentcred.kube import tokens
from agentcred.kube.errors import KubeNotFound
from support.aio import run_with_api

pytestmark = pytest.mark.e2e


def test_request_token_authenticates_as_the_service_account(
    kube: client.ApiClient, namespace: str
) -> None:
    client.CoreV1Api(kube).create_namespaced_service_account(
        namespace, {"metadata": {"name": "research-agent"}}
    )

    async def scenario(api: ApiClient) -> str:
        return await tokens.request_token(api, namespace, "research-agent", "vault")

    token = run_with_api(scenario)
    review = client.AuthenticationV1Api(kube).create_token_review(
        {"spec": {"token": token, "audiences": ["vault"]}}
    )
    assert review.status.authenticated
    assert review.status.user.username == f"system:serviceaccount:{namespace}:research-agent"
    assert review.status.audiences == ["vault"]


def test_request_token_for_a_missing_service_account_is_not_found(namespace: str) -> None:
    async def scenario(api: ApiClient) -> str:
        with pytest.raises(KubeNotFound) as caught:
            await tokens.request_token(api, namespace, "nobody", "vault")
        return str(caught.value)

    assert run_with_api(scenario) == f"ServiceAccount {namespace}/nobody not found"
