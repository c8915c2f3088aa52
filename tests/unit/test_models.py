"""Parsing specs into typed models: defaults, durations, and errors that name the field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentcred.models.backend import parse_backend_spec
from agentcred.models.credential import parse_credential_spec
from agentcred.models.duration import format_duration, parse_duration
from agentcred.models.errors import SpecError
from agentcred.models.resolved import DEFAULT_TTL
from agentcred.models.task import CredentialRef, parse_task_spec, secret_name_for

VAULT = {"role": "r", "dynamic": {"path": "database/creds/ro"}}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400), ("500ms", 0.5), ("2h0m5s", 7205)],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "15", "15 minutes", "0s", "1d", "-5m", "m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"Go duration|positive"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("45s", "15m", "1h30m", "2h0m5s"):
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


REF = {"name": "vault-main"}


def test_credential_defaults_live_in_the_operator() -> None:
    spec = parse_credential_spec({"backendRef": REF, "vault": VAULT})
    assert spec.backend_kind == "vault" and spec.backend_ref.name == "vault-main"
    assert spec.ttl == DEFAULT_TTL
    assert spec.renewal_percent == 67
    assert spec.refresh_interval == timedelta(minutes=5)
    assert spec.service_accounts is None
    assert spec.vault is not None and spec.vault.dynamic is not None
    assert spec.vault.dynamic.http_method == "GET"
    assert spec.vault.path == "database/creds/ro"


def test_kv_paths_are_matched_as_the_full_api_path() -> None:
    spec = parse_credential_spec({"backendRef": REF, "vault": {"kv": {"path": "team-a/llm"}}})
    assert spec.vault is not None and spec.vault.path == "secret/data/team-a/llm"


def test_backend_defaults_live_in_the_operator() -> None:
    spec = parse_backend_spec(
        {"namespaceSelector": {}, "vault": {"address": "https://v", "auth": {"kubernetes": {}}}}
    )
    assert spec.kind == "vault" and spec.allow_insecure_http is False and spec.max_ttl is None
    assert spec.vault is not None and spec.vault.allowed_paths == ()
    assert spec.vault.auth.kubernetes is not None
    assert (spec.vault.auth.kubernetes.mount, spec.vault.auth.kubernetes.audience) == (
        "kubernetes",
        "vault",
    )


@pytest.mark.parametrize(
    ("spec", "backend"),
    [
        ({"awsSecretsManager": {"secretId": "s"}}, "awsSecretsManager"),
        ({"awsSts": {"roleArn": "arn:aws:iam::123456789012:role/a"}}, "awsSts"),
        ({"gcpSecretManager": {"secret": "s"}}, "gcpSecretManager"),
        ({"azureKeyVault": {"name": "n"}}, "azureKeyVault"),
    ],
)
def test_backend_kind_is_named(spec: dict[str, object], backend: str) -> None:
    assert parse_credential_spec({"backendRef": REF, **spec}).backend_kind == backend


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({}, "spec.backendRef"),
        ({"backendRef": REF}, "spec"),
        ({"backendRef": REF, "vault": {"role": "r"}}, "spec.vault"),
        ({"backendRef": REF, "vault": {"dynamic": {"path": "a/../b"}}}, "spec.vault"),
        ({"backendRef": REF, "vault": VAULT, "ttl": "soon"}, "spec.ttl"),
        ({"backendRef": REF, "vault": VAULT, "renewalPercent": 100}, "spec.renewalPercent"),
        ({"backendRef": REF, "vault": VAULT, "renewalPercent": "67"}, "spec.renewalPercent"),
    ],
)
def test_bad_credential_specs_name_the_field(spec: dict[str, object], path: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_credential_spec(spec)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"vault": {"address": "https://v", "auth": {}}}, "spec.namespaceSelector"),
        (
            {"namespaceSelector": {}, "vault": {"address": "https://v", "auth": {}}},
            "spec.vault.auth",
        ),
        (
            {
                "namespaceSelector": {},
                "vault": {"address": "https://v", "auth": {"appRole": {"roleId": "x"}}},
            },
            "spec.vault.auth.appRole.secretIdRef",
        ),
    ],
)
def test_bad_backend_specs_name_the_field(spec: dict[str, object], path: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_backend_spec(spec)
    assert info.value.path == path


def test_task_spec_defaults_and_secret_names() -> None:
    spec = parse_task_spec({"credentials": [{"name": "db"}, {"name": "llm", "secretName": "x"}]})
    assert spec.service_account_name == "default"
    assert spec.completed is False and spec.pod_selector is None
    assert [secret_name_for("claim", c) for c in spec.credentials] == ["claim-db", "x"]
    assert spec.credentials[0] == CredentialRef(name="db")


def test_task_without_credentials_is_refused() -> None:
    with pytest.raises(SpecError, match=r"spec\.credentials"):
        parse_task_spec({"credentials": []})
