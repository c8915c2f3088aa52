"""models/approval.py: who must approve, which approvals count, what they decide (pure)."""

from __future__ import annotations

import datetime
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from agentcred.models import approval as model
from agentcred.models.backend import ApprovalPolicy, parse_backend_spec
from agentcred.models.errors import UnsafePattern
from agentcred.models.policy import check_allow_lists
from agentcred.models.resolved import (
    AwsStsSpec,
    AzureKeyVaultSpec,
    ResolvedCredential,
    VaultAuth,
    VaultDynamic,
    VaultKV,
    VaultSpec,
)

T0 = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
CRDS = Path(__file__).resolve().parents[2] / "crds"


def vault(path: str | None = None, kv: str | None = None) -> ResolvedCredential:
    spec = VaultSpec(
        auth=VaultAuth(),
        address="https://v",
        dynamic=VaultDynamic(path) if path else None,
        kv=VaultKV(kv) if kv else None,
    )
    return ResolvedCredential(vault=spec)


def needs(policy: ApprovalPolicy, resolved: ResolvedCredential, ns: str = "team-a") -> bool:
    return model.needs_approval(policy, resolved, namespace=ns, service_account="agent")


def test_required_asks_for_every_credential() -> None:
    assert needs(ApprovalPolicy(required=True), vault("database/creds/ro"))
    assert not model.needs_approval(None, vault("x"), namespace="team-a", service_account="agent")


@pytest.mark.parametrize(
    ("patterns", "resolved", "ns", "expected"),
    [
        (("database/creds/*_write",), vault("database/creds/orders_write"), "team-a", True),
        (("database/creds/*_write",), vault("database/creds/orders_read"), "team-a", False),
        (("database/creds/*_write",), vault("/database/creds/orders_write/"), "team-a", True),
        (("secret/data/{namespace}/prod/*",), vault(kv="team-a/prod/key"), "team-a", True),
        (("secret/data/{namespace}/prod/*",), vault(kv="team-a/prod/key"), "team-b", False),
    ],
)
def test_required_for_matches_like_the_allow_list(
    patterns: tuple[str, ...], resolved: ResolvedCredential, ns: str, expected: bool
) -> None:
    assert needs(ApprovalPolicy(required_for=patterns), resolved, ns) is expected


def test_a_case_variant_cannot_skip_approval_where_the_backend_ignores_case() -> None:
    sts = ResolvedCredential(aws_sts=AwsStsSpec(role_arn="arn:aws:iam::1:role/ProdAdmin"))
    assert needs(ApprovalPolicy(required_for=("arn:aws:iam::1:role/prodadmin",)), sts)
    azure = ResolvedCredential(azure_key_vault=AzureKeyVaultSpec(vault_url="https://k", name="PAY"))
    assert needs(ApprovalPolicy(required_for=("pay",)), azure)


def test_the_default_timeout_is_an_hour_and_lives_in_the_operator() -> None:
    assert model.wait(ApprovalPolicy(required=True)) == timedelta(hours=1)
    parsed = parse_backend_spec(
        {
            "namespaceSelector": {},
            "awsSecretsManager": {"allowedSecrets": ["*"]},
            "approval": {"required": True, "timeout": "5m"},
        }
    )
    assert parsed.approval == ApprovalPolicy(required=True, timeout=timedelta(minutes=5))


def test_an_ambiguous_required_for_pattern_is_refused_as_the_allow_lists_are() -> None:
    spec = parse_backend_spec(
        {
            "namespaceSelector": {},
            "awsSecretsManager": {"allowedSecrets": ["*"]},
            "approval": {"requiredFor": ["{namespace}-*"]},
        }
    )
    with pytest.raises(UnsafePattern) as info:
        check_allow_lists("b", spec)
    assert info.value.path == "spec.approval.requiredFor"


FACTS = model.TaskFacts(
    uid="u1",
    generation=1,
    creator="alice",
    service_account_user="system:serviceaccount:team-a:agent",
    backends=frozenset({"prod", "dev"}),
    required=frozenset({"prod"}),
    created=T0,
    timeout=timedelta(minutes=10),
)


def an(
    name: str = "a",
    *,
    decision: model.Decision = model.Decision.APPROVED,
    approver: str | None = "bob",
    backend: str = "prod",
    uid: str = "u1",
    generation: int = 1,
    minute: int = 1,
) -> model.Approval:
    return model.Approval(
        name=name,
        task="t1",
        backend=backend,
        decision=decision,
        reason="r",
        approver=approver,
        created=T0 + timedelta(minutes=minute),
        bound_uid=uid,
        bound_generation=generation,
    )


@pytest.mark.parametrize(
    ("approval", "state", "reason"),
    [
        (an(), model.ApprovalState.BOUND, "Counted"),
        (an(uid="u0"), model.ApprovalState.VOIDED, "TaskReplaced"),
        (an(generation=2), model.ApprovalState.VOIDED, "TaskChanged"),
        (an(approver=None), model.ApprovalState.IGNORED, "NoApprover"),
        (an(backend="elsewhere"), model.ApprovalState.IGNORED, "BackendMismatch"),
        (an(approver="alice"), model.ApprovalState.IGNORED, "SelfApproval"),
        (
            an(approver="system:serviceaccount:team-a:agent"),
            model.ApprovalState.IGNORED,
            "SelfApproval",
        ),
        (an(backend="dev"), model.ApprovalState.IGNORED, "NotRequired"),
    ],
)
def test_judge(approval: model.Approval, state: model.ApprovalState, reason: str) -> None:
    verdict = model.judge(approval, FACTS)
    assert (verdict.state, verdict.reason) == (state, reason)


def test_an_unknown_creator_counts_nobody() -> None:
    assert model.judge(an(), replace(FACTS, creator=None)).reason == "CreatorUnknown"


def test_decide() -> None:
    now = T0 + timedelta(minutes=5)
    assert model.decide(FACTS, [], now).kind is model.OutcomeKind.WAITING
    assert model.decide(FACTS, [an()], now).kind is model.OutcomeKind.APPROVED
    denied = an("d", decision=model.Decision.DENIED, approver="carol", minute=3)
    assert model.decide(FACTS, [an(), denied], now).deciding == (denied,)
    ignored_denial = an("s", decision=model.Decision.DENIED, approver="alice")
    assert model.decide(FACTS, [an(), ignored_denial], now).kind is model.OutcomeKind.APPROVED
    late = T0 + timedelta(minutes=10)
    assert model.decide(FACTS, [], late).kind is model.OutcomeKind.TIMED_OUT
    assert model.decide(FACTS, [an()], late).kind is model.OutcomeKind.APPROVED


def test_every_backend_that_asks_must_approve() -> None:
    both = replace(FACTS, required=frozenset({"prod", "dev"}))
    now = T0 + timedelta(minutes=5)
    outcome = model.decide(both, [an()], now)
    assert (outcome.kind, outcome.missing) == (model.OutcomeKind.WAITING, ("dev",))
    assert model.decide(both, [an(), an("b", backend="dev")], now).kind is (
        model.OutcomeKind.APPROVED
    )


def test_the_approval_crd_has_no_defaults_and_a_set_once_spec() -> None:
    crd = yaml.safe_load((CRDS / "agenttaskapprovals.yaml").read_text())
    assert "default" not in yaml.safe_dump(crd["spec"]["versions"][0]["schema"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "self == oldSelf" in [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert spec["properties"]["decision"]["enum"] == ["Approved", "Denied"]
