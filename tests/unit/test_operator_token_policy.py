"""The shipped bound on the operator's own tokens (manifests/base/operator-token-policy.yaml)
admits what the operator asks for with its defaults: otherwise installing it as shipped
would stop every login as an agent. The e2e suite (security/test_operator_token_bound.py)
proves the policy on the API server; this keeps its values in step with the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from agentcred.kube.tokens import MIN_EXPIRATION
from agentcred.models.backend import KubernetesAuthMethod
from agentcred.models.resolved import AwsWebIdentity
from agentcred.services.issuance import TOKEN_SECONDS
from agentcred.settings import SYSTEM_NAMESPACES

BASE = Path(__file__).resolve().parents[2] / "manifests" / "base"


def policy() -> dict[str, Any]:
    docs = yaml.safe_load_all((BASE / "operator-token-policy.yaml").read_text())
    return next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")


def variable(name: str) -> Any:
    [expression] = [v["expression"] for v in policy()["spec"]["variables"] if v["name"] == name]
    return json.loads(expression)  # the values are JSON literals (CEL reads them alike)


def test_the_default_audiences_are_allowed() -> None:
    assert {KubernetesAuthMethod().audience, AwsWebIdentity().audience} <= set(
        variable("audiences")
    )


def test_the_operator_asks_for_no_longer_than_the_maximum() -> None:
    assert max(MIN_EXPIRATION, TOKEN_SECONDS) <= variable("maxExpirationSeconds")


def test_it_denies_the_namespaces_the_operator_never_serves_and_binds_the_shipped_account() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    account = yaml.safe_load((BASE / "serviceaccount.yaml").read_text())["metadata"]["name"]
    namespace = kustomization["namespace"]
    assert set(variable("deniedNamespaces")) == {*SYSTEM_NAMESPACES, namespace}
    [condition] = policy()["spec"]["matchConditions"]
    assert condition["expression"] == (
        f"request.userInfo.username == 'system:serviceaccount:{namespace}:{account}'"
    )
    assert "operator-token-policy.yaml" in kustomization["resources"]
