"""The trust model as pure rules: what a tenant's AgentCredential may get from a backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agentcred.models.backend import parse_backend_spec
from agentcred.models.credential import parse_credential_spec
from agentcred.models.errors import NotAllowed, SpecError
from agentcred.models.parse import to_json
from agentcred.models.policy import ANY, authorize, glob_matches
from agentcred.models.resolved import ResolvedCredential, parse_resolved

TENANT = {"agentcred.io/tenant": "true", "kubernetes.io/metadata.name": "team-a"}
VAULT_BACKEND = {
    "namespaceSelector": {"matchLabels": {"agentcred.io/tenant": "true"}},
    "maxTTL": "1h",
    "vault": {
        "address": "https://vault.example:8200",
        "auth": {"kubernetes": {"mount": "k8s", "audience": "vault"}},
        "allowedPaths": ["database/creds/{namespace}_*", "secret/data/{namespace}/*"],
    },
}


def run(
    backend: dict[str, Any],
    credential: dict[str, Any],
    *,
    namespace: str = "team-a",
    labels: dict[str, str] | None = None,
    service_account: str | None = "agent",
) -> ResolvedCredential:
    return authorize(
        "main",
        parse_backend_spec(backend),
        parse_credential_spec({"backendRef": {"name": "main"}, **credential}),
        namespace=namespace,
        namespace_labels=TENANT if labels is None else labels,
        service_account=service_account,
    )


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("database/creds/{namespace}_*", "database/creds/team-a_ro", True),
        ("database/creds/{namespace}_*", "database/creds/team-b_ro", False),
        ("secret/data/{namespace}/*", "secret/data/team-a/llm", True),
        ("secret/data/{namespace}/*", "secret/data/team-a/deeper/llm", False),  # * is one segment
        ("secret/data/{namespace}/*", "secret/data/team-ab/llm", False),
        ("agents/{namespace}/{serviceAccount}", "agents/team-a/agent", True),
        ("agents/{namespace}/{serviceAccount}", "agents/team-a/other", False),
        ("team.a/*", "teamXa/x", False),  # literal text is literal, not a regex
    ],
)
def test_allow_list_globs(pattern: str, value: str, expected: bool) -> None:
    assert glob_matches(pattern, value, namespace="team-a", service_account="agent") is expected


def test_an_allowed_vault_path_resolves_with_the_backends_connection() -> None:
    resolved = run(
        VAULT_BACKEND, {"vault": {"role": "r", "dynamic": {"path": "database/creds/team-a_ro"}}}
    )
    assert resolved.vault is not None and resolved.vault.address == "https://vault.example:8200"
    kube = resolved.vault.auth.kubernetes
    assert kube is not None and (kube.role, kube.mount_path, kube.audience) == ("r", "k8s", "vault")


def test_kv_is_matched_as_mount_data_path() -> None:
    assert run(VAULT_BACKEND, {"vault": {"role": "r", "kv": {"path": "team-a/llm"}}}).vault
    with pytest.raises(NotAllowed, match="secret/data/team-b/llm"):
        run(VAULT_BACKEND, {"vault": {"role": "r", "kv": {"path": "team-b/llm"}}})
    with pytest.raises(NotAllowed):
        run(VAULT_BACKEND, {"vault": {"role": "r", "kv": {"mount": "other", "path": "team-a/x"}}})


def test_a_path_outside_the_allow_list_names_the_field_and_backend() -> None:
    with pytest.raises(NotAllowed) as info:
        run(VAULT_BACKEND, {"vault": {"role": "r", "dynamic": {"path": "database/creds/admin"}}})
    assert info.value.path == "spec.vault" and "CredentialBackend main" in str(info.value)


def test_a_namespace_the_selector_excludes_is_refused() -> None:
    with pytest.raises(NotAllowed, match="does not allow namespace team-b") as info:
        run(
            VAULT_BACKEND,
            {"vault": {"role": "r", "dynamic": {"path": "database/creds/team-b_ro"}}},
            namespace="team-b",
            labels={"kubernetes.io/metadata.name": "team-b"},
        )
    assert info.value.path == "spec.backendRef.name"


def test_an_empty_selector_selects_every_namespace() -> None:
    backend = {**VAULT_BACKEND, "namespaceSelector": {}}
    cred = {"vault": {"role": "r", "dynamic": {"path": "database/creds/x_ro"}}}
    assert run(backend, cred, namespace="x", labels={})


def test_no_allow_list_allows_nothing() -> None:
    backend = {"namespaceSelector": {}, "awsSecretsManager": {"region": "us-east-1"}}
    with pytest.raises(NotAllowed, match="team-a/llm"):
        run(backend, {"awsSecretsManager": {"secretId": "team-a/llm"}})


def test_service_accounts_list_limits_who_may_use_a_credential() -> None:
    cred = {
        "serviceAccounts": ["research-agent"],
        "vault": {"role": "r", "dynamic": {"path": "database/creds/team-a_ro"}},
    }
    assert run(VAULT_BACKEND, cred, service_account="research-agent")
    assert run(VAULT_BACKEND, cred, service_account=ANY)  # the Ready check: no task yet
    with pytest.raises(NotAllowed, match="ServiceAccount agent") as info:
        run(VAULT_BACKEND, cred, service_account="agent")
    assert info.value.path == "spec.serviceAccounts"


def test_plain_http_needs_allow_insecure_http() -> None:
    backend = {**VAULT_BACKEND, "vault": {**VAULT_BACKEND["vault"], "address": "http://v:8200"}}
    cred = {"vault": {"role": "r", "dynamic": {"path": "database/creds/team-a_ro"}}}
    with pytest.raises(NotAllowed, match="allowInsecureHTTP"):
        run(backend, cred)
    assert run({**backend, "allowInsecureHTTP": True}, cred).allow_insecure_http is True


def test_max_ttl_caps_the_requested_ttl() -> None:
    cred = {"vault": {"role": "r", "dynamic": {"path": "database/creds/team-a_ro"}}, "ttl": "3h"}
    assert run(VAULT_BACKEND, cred).ttl == timedelta(hours=1)


def test_a_credential_of_another_kind_than_the_backend_is_refused() -> None:
    with pytest.raises(NotAllowed, match="serves vault, not awsSecretsManager"):
        run(VAULT_BACKEND, {"awsSecretsManager": {"secretId": "team-a/x"}})


def test_vault_role_is_required_for_kubernetes_auth_and_refused_otherwise() -> None:
    with pytest.raises(SpecError, match=r"spec\.vault\.role"):
        run(VAULT_BACKEND, {"vault": {"dynamic": {"path": "database/creds/team-a_ro"}}})
    approle = {
        **VAULT_BACKEND,
        "vault": {
            **VAULT_BACKEND["vault"],
            "auth": {"appRole": {"roleId": "id", "secretIdRef": {"name": "s", "key": "k"}}},
        },
    }
    with pytest.raises(SpecError, match=r"spec\.vault\.role"):
        run(approle, {"vault": {"role": "r", "dynamic": {"path": "database/creds/team-a_ro"}}})
    resolved = run(approle, {"vault": {"dynamic": {"path": "database/creds/team-a_ro"}}})
    assert resolved.vault is not None and resolved.vault.auth.app_role is not None


def test_allowed_roles_limit_vault_roles_when_set() -> None:
    backend = {
        **VAULT_BACKEND,
        "vault": {**VAULT_BACKEND["vault"], "allowedRoles": ["{namespace}_*"]},
    }
    path = {"dynamic": {"path": "database/creds/team-a_ro"}}
    assert run(backend, {"vault": {"role": "team-a_agent", **path}})
    with pytest.raises(NotAllowed, match="role"):
        run(backend, {"vault": {"role": "admin", **path}})


def test_sts_role_arns_and_duration_cap() -> None:
    backend = {
        "namespaceSelector": {},
        "maxTTL": "20m",
        "awsSts": {
            "allowedRoleArns": ["arn:aws:iam::123456789012:role/{namespace}_*"],
            "webIdentity": {"audience": "sts.amazonaws.com"},
        },
    }
    ok = run(
        backend,
        {
            "awsSts": {
                "roleArn": "arn:aws:iam::123456789012:role/team-a_agent",
                "durationSeconds": 3600,
            }
        },
    )
    assert ok.aws_sts is not None and ok.aws_sts.duration_seconds == 1200
    assert ok.aws_sts.web_identity is not None
    with pytest.raises(NotAllowed, match="roleArn"):
        run(backend, {"awsSts": {"roleArn": "arn:aws:iam::123456789012:role/admin"}})


def test_gcp_secrets_are_matched_by_full_name() -> None:
    backend = {
        "namespaceSelector": {},
        "gcpSecretManager": {
            "project": "p",
            "allowedSecrets": ["projects/p/secrets/{namespace}_*"],
        },
    }
    short = run(backend, {"gcpSecretManager": {"secret": "team-a_llm"}})
    assert short.gcp_secret_manager is not None
    assert (short.gcp_secret_manager.project, short.gcp_secret_manager.secret) == (
        "p",
        "team-a_llm",
    )
    with pytest.raises(NotAllowed, match="projects/other/secrets/team-a_llm"):
        run(backend, {"gcpSecretManager": {"secret": "projects/other/secrets/team-a_llm"}})


def test_azure_names_are_matched() -> None:
    backend = {
        "namespaceSelector": {},
        "azureKeyVault": {
            "vaultUrl": "https://kv.vault.azure.net",
            "allowedSecrets": ["{namespace}"],
        },
    }
    ok = run(backend, {"azureKeyVault": {"name": "team-a"}})
    assert (
        ok.azure_key_vault is not None
        and ok.azure_key_vault.vault_url == "https://kv.vault.azure.net"
    )
    with pytest.raises(NotAllowed):
        run(backend, {"azureKeyVault": {"name": "team-b"}})


def test_a_resolved_credential_round_trips_through_its_session_record_json() -> None:
    resolved = run(
        VAULT_BACKEND, {"vault": {"role": "r", "kv": {"path": "team-a/llm"}}, "ttl": "90s"}
    )
    assert parse_resolved(to_json(resolved)) == resolved
