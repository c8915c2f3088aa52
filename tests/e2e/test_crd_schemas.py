"""The CRDs on a real kube-apiserver: established, and every schema/CEL rule enforced.

Each case is a server-side dry-run create; a rejected one must name the field so a
person running ``kubectl apply`` knows what to fix.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentcred.models.api_names import API_VERSION, Label
from support.kube import create, established, wait_for

pytestmark = pytest.mark.e2e

VAULT = {"role": "research-agent", "dynamic": {"path": "database/creds/readonly"}}
REF = {"name": "vault-main"}


def credential(name: str = "research-db", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentCredential",
        "metadata": {"name": name},
        "spec": {"backendRef": REF, **spec},
    }


def backend(name: str = "crd-schema-check", **spec: Any) -> dict[str, Any]:
    spec.setdefault("namespaceSelector", {"matchLabels": {"agentcred.io/tenant": "true"}})
    return {
        "apiVersion": API_VERSION,
        "kind": "CredentialBackend",
        "metadata": {"name": name},
        "spec": spec,
    }


def task(name: str = "claim-4711", **spec: Any) -> dict[str, Any]:
    spec.setdefault("credentials", [{"name": "research-db"}])
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentTask",
        "metadata": {"name": name},
        "spec": spec,
    }


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


VAULT_BACKEND = {
    "address": "https://vault.example.com:8200",
    "auth": {"kubernetes": {"mount": "kubernetes", "audience": "vault"}},
    "allowedPaths": ["database/creds/{namespace}_*", "secret/data/{namespace}/*"],
}

ACCEPT: list[tuple[str, dict[str, Any]]] = [
    ("vault-dynamic", credential(vault=VAULT)),
    (
        "vault-kv",
        credential(
            serviceAccounts=["research-agent"],
            vault={"kv": {"mount": "secret", "path": "agents/research/llm", "version": 0}},
        ),
    ),
    (
        "vault-all-knobs",
        credential(
            vault={
                "role": "r",
                "dynamic": {
                    "path": "pki/issue/agents",
                    "method": "POST",
                    "params": {"common_name": "a.example.com", "ttl": "1h"},
                },
            },
            ttl="1h30m",
            renewalPercent=50,
            refreshInterval="90s",
            template={"DATABASE_URL": "postgresql://{{ username }}:{{ password }}@db:5432/app"},
        ),
    ),
    (
        "aws-secrets-manager",
        credential(awsSecretsManager={"secretId": "agents/llm", "versionStage": "AWSCURRENT"}),
    ),
    (
        "aws-sts",
        credential(
            awsSts={"roleArn": "arn:aws:iam::123456789012:role/agent", "durationSeconds": 900}
        ),
    ),
    ("gcp-secret-manager", credential(gcpSecretManager={"secret": "llm-key", "version": "7"})),
    ("gcp-full-name", credential(gcpSecretManager={"secret": "projects/p/secrets/llm-key"})),
    ("azure-key-vault", credential(azureKeyVault={"name": "llm-key"})),
    ("task-minimal", task()),
    (
        "task-full",
        task(
            serviceAccountName="research-agent",
            credentials=[{"name": "research-db", "secretName": "claim-db"}, {"name": "llm-key"}],
            podSelector={"matchLabels": {Label.TASK: "claim-4711"}},
            activeDeadlineSeconds=1800,
            completed=False,
            failureReason="the agent gave up",
        ),
    ),
]

ACCEPT_BACKENDS: list[tuple[str, dict[str, Any]]] = [
    ("vault-kubernetes", backend(maxTTL="1h", vault=VAULT_BACKEND)),
    (
        "vault-approle-all-namespaces",
        backend(
            namespaceSelector={},
            vault={
                **VAULT_BACKEND,
                "auth": {
                    "appRole": {"roleId": "r-1", "secretIdRef": {"name": "approle", "key": "id"}}
                },
                "allowedRoles": ["{namespace}_*"],
                "namespace": "team",
                "caBundle": "-----BEGIN CERTIFICATE-----",
            },
        ),
    ),
    (
        "vault-token-insecure",
        backend(
            allowInsecureHTTP=True,
            vault={
                **VAULT_BACKEND,
                "address": "http://127.0.0.1:8200",
                "auth": {"token": {"secretRef": {"name": "vault-token", "key": "token"}}},
            },
        ),
    ),
    (
        "aws",
        backend(
            awsSecretsManager={
                "region": "us-east-1",
                "endpoint": "https://secretsmanager.us-east-1.amazonaws.com",
                "allowedSecrets": ["{namespace}/*"],
            }
        ),
    ),
    (
        "sts-web-identity",
        backend(
            awsSts={
                "allowedRoleArns": ["arn:aws:iam::123456789012:role/{namespace}_*"],
                "webIdentity": {"audience": "sts.amazonaws.com"},
            }
        ),
    ),
    (
        "gcp",
        backend(
            gcpSecretManager={
                "project": "p",
                "transport": "rest",
                "allowedSecrets": ["projects/p/secrets/{namespace}_*"],
            }
        ),
    ),
    (
        "azure",
        backend(
            azureKeyVault={
                "vaultUrl": "https://kv.vault.azure.net",
                "allowedSecrets": ["{namespace}"],
            }
        ),
    ),
]

# (case id, manifest, substrings the rejection message must contain)
REJECT: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("no-backend-block", credential(ttl="15m"), ("spec", "exactly one backend block")),
    (
        "no-backend-ref",
        without(credential(vault=VAULT), "spec", "backendRef"),
        ("spec.backendRef",),
    ),
    (
        "two-backends",
        credential(vault=VAULT, azureKeyVault={"name": "x"}),
        ("spec", "exactly one backend block"),
    ),
    (
        "vault-neither-dynamic-nor-kv",
        credential(vault={"role": "r"}),
        ("spec.vault", "exactly one of dynamic or kv"),
    ),
    (
        "vault-both-dynamic-and-kv",
        credential(vault={**VAULT, "kv": {"path": "a"}}),
        ("spec.vault", "exactly one of dynamic or kv"),
    ),
    (
        "vault-dot-dot-path",
        credential(vault={"role": "r", "kv": {"path": "team-a/../team-b/x"}}),
        ("spec.vault.kv.path",),
    ),
    (
        "renewal-percent-zero",
        credential(vault=VAULT, renewalPercent=0),
        ("spec.renewalPercent", "greater than or equal to 1"),
    ),
    (
        "renewal-percent-100",
        credential(vault=VAULT, renewalPercent=100),
        ("spec.renewalPercent", "less than or equal to 99"),
    ),
    (
        "sts-duration-too-short",
        credential(awsSts={"roleArn": "arn:aws:iam::123456789012:role/a", "durationSeconds": 899}),
        ("spec.awsSts.durationSeconds", "900"),
    ),
    (
        "sts-duration-too-long",
        credential(
            awsSts={"roleArn": "arn:aws:iam::123456789012:role/a", "durationSeconds": 43201}
        ),
        ("spec.awsSts.durationSeconds", "43200"),
    ),
    (
        "sts-bad-role-arn",
        credential(awsSts={"roleArn": "agent-role"}),
        ("spec.awsSts.roleArn", "arn:aws:iam::"),
    ),
    ("ttl-not-a-duration", credential(vault=VAULT, ttl="15 minutes"), ("spec.ttl", "Go duration")),
    ("ttl-zero", credential(vault=VAULT, ttl="0s"), ("spec.ttl", "at least 60s")),
    ("ttl-1ns", credential(vault=VAULT, ttl="1ns"), ("spec.ttl", "at least 60s")),
    ("ttl-59s", credential(vault=VAULT, ttl="59s"), ("spec.ttl", "at least 60s")),
    (
        "refresh-interval-1s",
        credential(vault=VAULT, refreshInterval="1s"),
        ("spec.refreshInterval", "at least 10s"),
    ),
    (
        "params-too-many-keys",
        credential(
            vault={
                "role": "r",
                "dynamic": {"path": "a/b", "params": {f"k{i}": i for i in range(65)}},
            }
        ),
        ("spec.vault.dynamic.params", "64"),
    ),
    (
        "refresh-interval-bad",
        credential(vault=VAULT, refreshInterval="5"),
        ("spec.refreshInterval", "Go duration"),
    ),
    ("credential-name-not-dns-label", credential("research.db", vault=VAULT), ("metadata.name",)),
    (
        "gcp-bad-version",
        credential(gcpSecretManager={"secret": "s", "version": "v1"}),
        ("spec.gcpSecretManager.version", "'latest' or a positive version number"),
    ),
    (
        "secrets-manager-stage-and-id",
        credential(
            awsSecretsManager={"secretId": "s", "versionStage": "AWSCURRENT", "versionId": "abc"}
        ),
        ("spec.awsSecretsManager", "at most one of versionStage and versionId"),
    ),
    (
        "template-bad-key",
        credential(vault=VAULT, template={"DB URL": "x"}),
        ("spec.template", "valid Secret keys"),
    ),
    (
        "task-missing-credentials",
        without(task(), "spec", "credentials"),
        ("spec.credentials", "Required"),
    ),
    ("task-empty-credentials", task(credentials=[]), ("spec.credentials", "at least 1")),
    (
        "task-credential-name-not-dns-label",
        task(credentials=[{"name": "Research_DB"}]),
        ("spec.credentials[0].name", "DNS label"),
    ),
    (
        "task-duplicate-credential",
        task(credentials=[{"name": "a"}, {"name": "a"}]),
        ("spec.credentials[1]", "Duplicate"),
    ),
    (
        "task-duplicate-secret-name",
        task(credentials=[{"name": "a", "secretName": "s"}, {"name": "b", "secretName": "s"}]),
        ("spec.credentials", "secretName must be unique"),
    ),
    (
        "task-bad-secret-name",
        task(credentials=[{"name": "a", "secretName": "Bad_Name"}]),
        ("spec.credentials[0].secretName", "DNS subdomain"),
    ),
    (
        "task-deadline-zero",
        task(activeDeadlineSeconds=0),
        ("spec.activeDeadlineSeconds", "greater than or equal to 1"),
    ),
    ("task-deadline-negative", task(activeDeadlineSeconds=-5), ("spec.activeDeadlineSeconds",)),
    (
        "task-deadline-overflow",
        task(activeDeadlineSeconds=10**12),
        ("spec.activeDeadlineSeconds", "31622400"),
    ),
    (
        "task-empty-pod-selector",
        task(podSelector={}),
        ("spec.podSelector", "matchLabels or matchExpressions"),
    ),
    ("task-bad-service-account", task(serviceAccountName="Bad_SA"), ("spec.serviceAccountName",)),
]

REJECT_BACKENDS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    (
        "no-namespace-selector",
        without(backend(vault=VAULT_BACKEND), "spec", "namespaceSelector"),
        ("spec.namespaceSelector", "Required"),
    ),
    ("no-block", backend(), ("spec", "exactly one backend block")),
    (
        "vault-two-auth-methods",
        backend(
            vault={
                **VAULT_BACKEND,
                "auth": {"kubernetes": {}, "token": {"secretRef": {"name": "t", "key": "k"}}},
            }
        ),
        ("spec.vault.auth", "exactly one method"),
    ),
    (
        "vault-no-auth-method",
        backend(vault={**VAULT_BACKEND, "auth": {}}),
        ("spec.vault.auth", "exactly one method"),
    ),
    (
        "vault-bad-address",
        backend(vault={**VAULT_BACKEND, "address": "vault:8200"}),
        ("spec.vault.address", "http:// or https://"),
    ),
    (
        "vault-unparsable-address",
        backend(vault={**VAULT_BACKEND, "address": "http://[x"}),
        ("spec.vault.address", "http:// or https://"),
    ),
    (
        "vault-no-allow-list",
        without(backend(vault=VAULT_BACKEND), "spec", "vault", "allowedPaths"),
        ("spec.vault.allowedPaths", "Required"),
    ),
    (
        "azure-http-url",
        backend(azureKeyVault={"vaultUrl": "http://kv.example", "allowedSecrets": ["x"]}),
        ("spec.azureKeyVault.vaultUrl", "https://"),
    ),
    ("max-ttl-too-short", backend(vault=VAULT_BACKEND, maxTTL="1s"), ("spec.maxTTL", "60s")),
]

# Connection fields a tenant could once write on an AgentCredential: with strict field
# validation (kubectl's default) the API server refuses them, naming the field.
TENANT_CONNECTION_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    (
        "vault-address",
        credential(vault={**VAULT, "address": "http://evil:1"}),
        "spec.vault.address",
    ),
    (
        "vault-audience",
        credential(vault={**VAULT, "auth": {"kubernetes": {"audience": "x"}}}),
        "spec.vault.auth",
    ),
    (
        "aws-endpoint",
        credential(awsSecretsManager={"secretId": "s", "endpoint": "http://evil:1"}),
        "spec.awsSecretsManager.endpoint",
    ),
    (
        "sts-web-identity",
        credential(
            awsSts={
                "roleArn": "arn:aws:iam::123456789012:role/a",
                "webIdentity": {"audience": "https://kubernetes.default.svc"},
            }
        ),
        "spec.awsSts.webIdentity",
    ),
    (
        "gcp-endpoint",
        credential(gcpSecretManager={"secret": "s", "endpoint": "http://evil:1"}),
        "spec.gcpSecretManager.endpoint",
    ),
    (
        "azure-vault-url",
        credential(azureKeyVault={"name": "s", "vaultUrl": "https://evil.example"}),
        "spec.azureKeyVault.vaultUrl",
    ),
]


def create_backend(kube: client.ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = client.CustomObjectsApi(kube).create_cluster_custom_object(
        "agentcred.io", "v1alpha1", "credentialbackends", body, dry_run="All"
    )
    return result


def test_crds_are_established(kube: client.ApiClient, crds: None) -> None:
    ext = client.ApiextensionsV1Api(kube)
    for name in (
        "agentcredentials.agentcred.io",
        "agenttasks.agentcred.io",
        "credentialbackends.agentcred.io",
    ):
        assert established(ext, name)


@pytest.mark.parametrize(("case", "body"), ACCEPT_BACKENDS, ids=[c for c, _ in ACCEPT_BACKENDS])
def test_valid_backend_is_accepted(
    kube: client.ApiClient, crds: None, case: str, body: dict[str, Any]
) -> None:
    created = create_backend(kube, body)
    assert created["spec"] == body["spec"], "the server changed the spec (a default or pruning)"


@pytest.mark.parametrize(
    ("case", "body", "expected"), REJECT_BACKENDS, ids=[c for c, _, _ in REJECT_BACKENDS]
)
def test_invalid_backend_is_rejected_naming_the_field(
    kube: client.ApiClient, crds: None, case: str, body: dict[str, Any], expected: tuple[str, ...]
) -> None:
    with pytest.raises(ApiException) as info:
        create_backend(kube, body)
    assert info.value.status == 422, info.value.body
    for text in expected:
        assert text in info.value.body, f"{text!r} not in rejection: {info.value.body}"


@pytest.mark.parametrize(
    ("case", "body", "field"),
    TENANT_CONNECTION_FIELDS,
    ids=[c for c, _, _ in TENANT_CONNECTION_FIELDS],
)
def test_connection_fields_on_an_agent_credential_are_refused(
    kube: client.ApiClient, crds: None, case: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as info:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            "agentcred.io",
            "v1alpha1",
            "default",
            "agentcredentials",
            body,
            dry_run="All",
            field_validation="Strict",
        )
    assert info.value.status in (400, 422), info.value.body
    assert "unknown field" in info.value.body and field in info.value.body, info.value.body


@pytest.mark.parametrize(("case", "body"), ACCEPT, ids=[c for c, _ in ACCEPT])
def test_valid_manifest_is_accepted(
    kube: client.ApiClient, crds: None, case: str, body: dict[str, Any]
) -> None:
    created = create(kube, "default", body, dry_run=True)
    assert created["spec"] == body["spec"], "the server changed the spec (a default or pruning)"


@pytest.mark.parametrize(("case", "body", "expected"), REJECT, ids=[c for c, _, _ in REJECT])
def test_invalid_manifest_is_rejected_naming_the_field(
    kube: client.ApiClient, crds: None, case: str, body: dict[str, Any], expected: tuple[str, ...]
) -> None:
    with pytest.raises(ApiException) as info:
        create(kube, "default", body, dry_run=True)
    assert info.value.status == 422, info.value.body
    for text in expected:
        assert text in info.value.body, f"{text!r} not in rejection: {info.value.body}"


def test_completed_task_cannot_be_reopened_nor_its_credentials_changed(
    kube: client.ApiClient, crds: None, namespace: str
) -> None:
    api = client.CustomObjectsApi(kube)
    args = ("agentcred.io", "v1alpha1", namespace, "agenttasks", "claim-4711")
    create(kube, namespace, task(completed=True))
    with pytest.raises(ApiException) as reopened:
        api.patch_namespaced_custom_object(*args, {"spec": {"completed": False}})
    assert "spec.completed" in reopened.value.body
    assert "cannot be reopened" in reopened.value.body
    with pytest.raises(ApiException) as changed:
        api.patch_namespaced_custom_object(*args, {"spec": {"credentials": [{"name": "other"}]}})
    assert "spec.credentials" in changed.value.body
    assert "cannot change after the task is created" in changed.value.body


def test_a_failure_reason_is_set_once_and_bounded(
    kube: client.ApiClient, crds: None, namespace: str
) -> None:
    """spec.failureReason (agentcred_client's report): added once, then never changed or
    removed (a removal followed by a new value would rewrite what the agent reported)."""
    api = client.CustomObjectsApi(kube)
    args = ("agentcred.io", "v1alpha1", namespace, "agenttasks", "claim-4711")
    with pytest.raises(ApiException) as too_long:
        create(kube, namespace, task(failureReason="x" * 1025))
    assert "spec.failureReason" in too_long.value.body
    create(kube, namespace, task())
    api.patch_namespaced_custom_object(*args, {"spec": {"failureReason": "gave up"}})
    for change in ({"failureReason": "all fine"}, {"failureReason": None}):
        with pytest.raises(ApiException) as refused:
            api.patch_namespaced_custom_object(*args, {"spec": change})
        assert "spec.failureReason" in refused.value.body
        assert "failureReason is set once" in refused.value.body
    assert api.get_namespaced_custom_object(*args)["spec"]["failureReason"] == "gave up"


def test_printer_columns_and_short_names(kube: client.ApiClient, crds: None) -> None:
    ext = client.ApiextensionsV1Api(kube)
    task_crd = ext.read_custom_resource_definition("agenttasks.agentcred.io")
    cred_crd = ext.read_custom_resource_definition("agentcredentials.agentcred.io")
    assert {"Phase", "Credentials", "Expires", "Age"} <= {
        c.name for c in task_crd.spec.versions[0].additional_printer_columns
    }
    assert {"Backend", "Ready", "Age"} <= {
        c.name for c in cred_crd.spec.versions[0].additional_printer_columns
    }
    backend_crd = ext.read_custom_resource_definition("credentialbackends.agentcred.io")
    assert backend_crd.spec.scope == "Cluster"
    assert backend_crd.spec.names.short_names == ["cbackend"]
    assert backend_crd.spec.names.categories == ["agentcred"]
    assert task_crd.spec.names.short_names == ["atask"]
    assert cred_crd.spec.names.short_names == ["acred"]
    wait_for(
        lambda: task_crd.spec.versions[0].subresources.status is not None, 1, "status subresource"
    )
