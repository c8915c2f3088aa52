"""maxTTL is a ceiling on what is issued: params and writes allow-listed, what comes back
checked (lease, token, certificate, STS session), unleased answers refused, STS capped."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from agentcred.backends.aws_sts import _issued, duration_seconds
from agentcred.backends.base import Capabilities, Issued, Renewed
from agentcred.backends.vault.leases import lease_from, validity
from agentcred.models.backend import parse_backend_spec
from agentcred.models.ceiling import (
    GRACE,
    TTL_EXCEEDED,
    UNLEASED,
    Validity,
    breach,
    capped_param_ttl,
    certificate_not_after,
    certificate_validity,
    ssh_certificate_valid_before,
    sts_duration,
    sts_fits,
)
from agentcred.models.credential import parse_credential_spec
from agentcred.models.errors import NotAllowed, SpecError
from agentcred.models.parse import to_json
from agentcred.models.policy import authorize
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from agentcred.models.task import CredentialRef
from agentcred.services.errors import TaskFailed
from agentcred.services.issuance import BoundCredential, bind, check_ceiling
from agentcred.services.maintenance import check_renewal

NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
LABELS = {"kubernetes.io/metadata.name": "team-a"}


# -- the post-issuance check -------------------------------------------------------------------


def lease(seconds: float, what: str = "lease") -> Validity:
    return Validity(what, NOW + timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("validity", "over"),
    [
        ([lease(3600)], False),
        ([lease(3600 + GRACE.total_seconds())], False),  # the grace is included
        ([lease(3600 + GRACE.total_seconds() + 1)], True),
        ([lease(600), lease(365 * 86400, "certificate")], True),  # any item counts
        ([Validity("lease", None)], True),  # no expiry fails every ceiling
        ([], False),
    ],
)
def test_what_came_back_is_held_to_max_ttl_plus_grace(validity: list[Validity], over: bool) -> None:
    found = breach(HOUR, NOW, validity, revocable=True)
    assert (found is not None) == over
    if found is not None:
        assert found.reason == TTL_EXCEEDED


def test_the_message_says_what_came_back_and_the_ceiling_never_a_value() -> None:
    found = breach(HOUR, NOW, [lease(8760 * 3600, "certificate")], revocable=True)
    assert found is not None
    assert "certificate valid for 8760h" in found.message
    assert "until 2031-01-01T12:00:00Z" in found.message
    assert "maxTTL of 1h (plus 5m grace)" in found.message
    assert "revoked" in found.message and "nothing was written" in found.message
    unrevocable = breach(HOUR, NOW, [lease(7200, "STS session")], revocable=False)
    assert unrevocable is not None and "cannot be revoked" in unrevocable.message


def test_no_max_ttl_is_no_ceiling() -> None:
    assert breach(None, NOW, [Validity("lease", None)], revocable=True) is None


def test_an_unleased_answer_is_refused_unless_the_backend_allows_it() -> None:
    found = breach(HOUR, NOW, [], revocable=True, unleased=True)
    assert found is not None and found.reason == UNLEASED
    assert "allowUnleased" in found.message and "revoke" in found.message
    assert breach(HOUR, NOW, [], revocable=True, unleased=True, allow_unleased=True) is None
    # allowed, and still held to the ceiling: an unleased certificate cannot be revoked
    cert = [lease(8760 * 3600, "certificate")]
    found = breach(HOUR, NOW, cert, revocable=True, unleased=True, allow_unleased=True)
    assert found is not None and found.reason == TTL_EXCEEDED
    assert "cannot be revoked" in found.message


# -- params.ttl, STS durations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "max_ttl", "expected"),
    [
        ("8760h", HOUR, "3600s"),
        ("30m", HOUR, "30m"),  # within the ceiling: sent as written
        (7200, HOUR, "3600s"),
        ("7200", HOUR, "3600s"),
        ("2d", HOUR, "3600s"),
        ("1h30m", timedelta(minutes=90), "1h30m"),
        ("8760h", None, "8760h"),  # no maxTTL: nothing to cap by
    ],
)
def test_an_allowed_params_ttl_is_capped_by_max_ttl(
    value: Any, max_ttl: timedelta | None, expected: Any
) -> None:
    assert capped_param_ttl(value, max_ttl) == expected


@pytest.mark.parametrize("value", ["forever", "", "-1h", True, None, ["1h"]])
def test_a_params_ttl_that_cannot_be_read_cannot_be_capped(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        capped_param_ttl(value, HOUR)


@pytest.mark.parametrize(
    ("wanted", "max_ttl", "left", "expected"),
    [
        (3600, timedelta(minutes=20), None, 1200),  # maxTTL
        (3600, None, timedelta(minutes=30), 1800),  # the deadline
        (3600, HOUR, timedelta(minutes=10), 900),  # less than 900 s left: STS's minimum
        (3600, None, timedelta(seconds=1800.5), 1801),  # rounded up to whole seconds
        (100_000, None, None, 43200),  # STS's maximum
        (60, None, None, 900),
    ],
)
def test_sts_durations_are_capped_by_max_ttl_and_the_deadline(
    wanted: int, max_ttl: timedelta | None, left: timedelta | None, expected: int
) -> None:
    deadline = NOW + left if left is not None else None
    assert sts_duration(wanted, max_ttl=max_ttl, now=NOW, deadline=deadline) == expected


def test_the_sts_backend_asks_for_the_capped_duration() -> None:
    sts = parse_resolved({"awsSts": {"roleArn": "arn:aws:iam::123456789012:role/r"}}).aws_sts
    explicit = parse_resolved(
        {"awsSts": {"roleArn": "arn:aws:iam::123456789012:role/r", "durationSeconds": 7200}}
    ).aws_sts
    assert sts is not None and explicit is not None
    soon = datetime.datetime.now(UTC) + timedelta(minutes=20)
    # durationSeconds no longer escapes the deadline (only the ttl was capped by it)
    assert 1195 <= duration_seconds(explicit, HOUR, deadline=soon) <= 1200
    assert duration_seconds(explicit, HOUR, max_ttl=timedelta(minutes=30)) == 1800
    assert duration_seconds(sts, timedelta(minutes=15)) == 900


def test_sts_needs_a_max_ttl_its_shortest_session_fits_under() -> None:
    assert sts_fits(None) and sts_fits(timedelta(minutes=10))
    assert not sts_fits(timedelta(minutes=9, seconds=59))


def test_sts_reports_its_expiration_for_the_check() -> None:
    body = {
        "Credentials": {
            "AccessKeyId": "AKIA",
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": NOW + 12 * HOUR,
        },
        "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/r/s"},
    }
    issued = _issued(body, NOW, "assuming")
    assert issued.validity == (Validity("STS session", NOW + 12 * HOUR),)
    found = breach(HOUR, NOW, issued.validity, revocable=False)
    assert found is not None and found.reason == TTL_EXCEEDED


# -- certificates ----------------------------------------------------------------------------


def certificate(not_after: datetime.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "claim.agents.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(seconds=30))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    "not_after",
    [
        NOW + HOUR,  # UTCTime
        datetime.datetime(2051, 6, 1, 0, 0, 1, tzinfo=UTC),  # GeneralizedTime (2050 on)
    ],
)
def test_a_certificates_not_after_is_read_without_a_crypto_library(
    not_after: datetime.datetime,
) -> None:
    assert certificate_not_after(certificate(not_after)) == not_after


@pytest.mark.parametrize(
    "pem",
    [
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----",  # SEQUENCE{INT}
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",  # truncated
    ],
)
def test_an_unreadable_certificate_raises(pem: str) -> None:
    with pytest.raises(ValueError):
        certificate_not_after(pem)


def test_a_pki_answers_certificate_end_is_the_later_of_expiration_and_not_after() -> None:
    year = NOW + timedelta(days=365)
    pem = certificate(year)
    assert certificate_validity({"certificate": pem}) == Validity("certificate", year)
    early = int((NOW + HOUR).timestamp())
    assert certificate_validity({"certificate": pem, "expiration": early}) == Validity(
        "certificate", year
    )
    assert certificate_validity({"certificate": "garbage", "expiration": early}) == Validity(
        "certificate", NOW + HOUR
    )
    assert certificate_validity({"certificate": "garbage"}) == Validity("certificate", None)
    assert certificate_validity({"username": "u", "expiration": early}) is None
    # the CA's certificates in the same answer are not what was issued
    assert certificate_validity({"issuing_ca": certificate(year)}) is None


def ssh_certificate(key: Any, valid_before: int) -> str:
    ca = ed25519.Ed25519PrivateKey.generate()
    cert = (
        serialization.SSHCertificateBuilder()
        .public_key(key.public_key())
        .serial(7)
        .type(serialization.SSHCertificateType.USER)
        .key_id(b"agent")
        .valid_principals([b"agent", b"ops"])
        .valid_after(int(NOW.timestamp()) - 30)
        .valid_before(valid_before)
        .sign(ca)
    )
    return cert.public_bytes().decode()


@pytest.mark.parametrize(
    "key",
    [
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["ed25519", "ecdsa", "rsa"],
)
def test_an_ssh_certificates_valid_before_is_read(key: Any) -> None:
    year = int((NOW + timedelta(days=365)).timestamp())
    signed = ssh_certificate(key, year)
    assert ssh_certificate_valid_before(signed) == datetime.datetime.fromtimestamp(year, UTC)
    answer = {"signed_key": signed, "serial_number": "07"}
    found = breach(HOUR, NOW, [certificate_validity(answer) or lease(0)], revocable=False)
    assert found is not None and "SSH certificate valid for 8760h" in found.message


def test_an_ssh_certificate_valid_forever_or_unreadable_has_no_end() -> None:
    forever = ssh_certificate(ed25519.Ed25519PrivateKey.generate(), 2**64 - 1)
    assert ssh_certificate_valid_before(forever) is None
    assert certificate_validity({"signed_key": "ssh-ed25519-cert-v01@openssh.com AAAA"}) == (
        Validity("SSH certificate", None)
    )
    with pytest.raises(ValueError):
        ssh_certificate_valid_before("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 not-a-certificate")
    # an expiration past what a date holds is no end at all
    assert certificate_validity({"certificate": "x", "expiration": 10**20}) == Validity(
        "certificate", None
    )


def test_the_vault_backend_reports_every_expiry_of_a_dynamic_answer() -> None:
    year = NOW + timedelta(days=365)
    body = {
        "lease_id": "pki/issue/agent/abc",
        "lease_duration": 31536000,
        "renewable": False,
        "data": {"certificate": certificate(year), "expiration": int(year.timestamp())},
    }
    read = lease_from(body, "POST pki/issue/agent")
    assert validity(read, NOW) == (
        Validity("lease", NOW + timedelta(seconds=31536000)),
        Validity("certificate", year),
    )
    unleased = lease_from({"data": {"value": "x"}, "lease_id": ""}, "GET a/b")
    assert unleased.lease_id == "" and validity(unleased, NOW) == ()
    token = lease_from(
        {
            "data": {"k": "v"},
            "lease_id": "x/y",
            "lease_duration": 60,
            "auth": {"lease_duration": 0},
        },
        "POST x/y",
    )
    assert validity(token, NOW) == (lease(60), Validity("token", None))


# -- the policy: allowedParams, allowedWritePaths, allowUnleased -------------------------------


BACKEND: dict[str, Any] = {
    "namespaceSelector": {},
    "maxTTL": "1h",
    "vault": {
        "address": "https://vault.example:8200",
        "auth": {"kubernetes": {}},
        "allowedPaths": ["database/creds/{namespace}_ro", "pki/issue/read_only"],
        "allowedWritePaths": ["pki/issue/{namespace}"],
        "allowedParams": ["common_name", "ttl"],
    },
}


def resolve(dynamic: dict[str, Any], backend: dict[str, Any] | None = None) -> ResolvedCredential:
    return authorize(
        "main",
        parse_backend_spec(backend or BACKEND),
        parse_credential_spec(
            {"backendRef": {"name": "main"}, "vault": {"role": "r", "dynamic": dynamic}}
        ),
        namespace="team-a",
        namespace_labels=LABELS,
        service_account="agent",
    )


def without(key: str) -> dict[str, Any]:
    return {**BACKEND, "vault": {k: v for k, v in BACKEND["vault"].items() if k != key}}


def test_params_outside_allowed_params_are_refused_naming_the_param_and_backend() -> None:
    with pytest.raises(NotAllowed) as refused:
        resolve({"path": "pki/issue/team-a", "params": {"common_name": "a", "not_after": "x"}})
    assert refused.value.path == "spec.vault.dynamic.params.not_after"
    assert "'not_after'" in str(refused.value) and "CredentialBackend main" in str(refused.value)
    with pytest.raises(NotAllowed, match="'common_name' is not in the allowedParams"):
        resolve(
            {"path": "pki/issue/team-a", "params": {"common_name": "a"}}, without("allowedParams")
        )


def test_an_allowed_params_ttl_is_capped_in_what_is_sent() -> None:
    bound = resolve({"path": "pki/issue/team-a", "params": {"common_name": "a", "ttl": "8760h"}})
    assert bound.vault is not None and bound.vault.dynamic is not None
    assert bound.vault.dynamic.params == {"common_name": "a", "ttl": "3600s"}
    with pytest.raises(SpecError, match=r"params\.ttl"):
        resolve({"path": "pki/issue/team-a", "params": {"ttl": "a year"}})


def test_a_write_needs_allowed_write_paths_even_on_a_readable_path() -> None:
    for dynamic in (
        {"path": "pki/issue/read_only", "method": "POST"},
        {"path": "pki/issue/read_only", "params": {"common_name": "a"}},  # POST by default
        {"path": "database/creds/team-a_ro", "method": "POST"},
    ):
        with pytest.raises(NotAllowed, match="allowedWritePaths of CredentialBackend main") as no:
            resolve(dynamic)
        assert no.value.path == "spec.vault.dynamic.method"
    assert resolve({"path": "pki/issue/team-a", "params": {"common_name": "a"}}).vault
    with pytest.raises(NotAllowed, match="allowedWritePaths"):
        resolve({"path": "pki/issue/team-b", "method": "POST"})  # placeholder substituted
    # reading a path allowed only for writing is not a read allowance
    with pytest.raises(NotAllowed, match="allow-list"):
        resolve({"path": "pki/issue/team-a", "method": "GET"})
    # GET with params sends them as a query: still allow-listed, no write needed
    assert resolve({"path": "pki/issue/read_only", "method": "GET", "params": {"ttl": "1m"}})


def test_the_ceiling_and_allow_unleased_travel_with_the_resolved_credential() -> None:
    bound = resolve({"path": "database/creds/team-a_ro"})
    assert bound.max_ttl == HOUR
    assert bound.vault is not None and bound.vault.allow_unleased is False
    allowing = {**BACKEND, "vault": {**BACKEND["vault"], "allowUnleased": True}}
    unleased_ok = resolve({"path": "database/creds/team-a_ro"}, allowing)
    assert unleased_ok.vault is not None and unleased_ok.vault.allow_unleased is True
    # what a lease record keeps, and reads back (renewal checks against the same)
    assert parse_resolved(to_json(unleased_ok)) == unleased_ok
    old_record = {k: v for k, v in to_json(bound).items() if k != "maxTTL"}
    assert parse_resolved(old_record).max_ttl is None


def test_an_sts_backend_whose_max_ttl_cannot_hold_a_session_serves_nothing() -> None:
    backend = {
        "namespaceSelector": {},
        "maxTTL": "5m",
        "awsSts": {"allowedRoleArns": ["arn:aws:iam::123456789012:role/r"]},
    }
    credential = {
        "backendRef": {"name": "sts"},
        "awsSts": {"roleArn": backend["awsSts"]["allowedRoleArns"][0]},
    }
    with pytest.raises(NotAllowed, match="STS issues no session shorter than 15m"):
        authorize(
            "sts",
            parse_backend_spec(backend),
            parse_credential_spec(credential),
            namespace="team-a",
            namespace_labels=LABELS,
            service_account="agent",
        )
    fits = authorize(
        "sts",
        parse_backend_spec({**backend, "maxTTL": "10m"}),
        parse_credential_spec(
            {**credential, "awsSts": {**credential["awsSts"], "durationSeconds": 3600}}
        ),
        namespace="team-a",
        namespace_labels=LABELS,
        service_account="agent",
    )
    assert fits.aws_sts is not None and fits.aws_sts.duration_seconds == 900


# -- the services act on the verdict ---------------------------------------------------------


@dataclass
class StubBackend:
    revocable: bool = True

    def capabilities(self, spec: ResolvedCredential) -> Capabilities:
        return Capabilities(renewable=self.revocable, revocable=self.revocable, static=False)


def resolved_with(spec: ResolvedCredential, revocable: bool = True) -> BoundCredential:
    backend: Any = StubBackend(revocable)
    return bind(CredentialRef("cert"), spec, backend)


def issued(validity: tuple[Validity, ...], unleased: bool = False) -> Issued:
    return Issued(
        data={"certificate": "PEM"},
        lease_id="" if unleased else "pki/issue/x/1",
        issued_at=NOW,
        expires_at=None,
        renewable=False,
        validity=validity,
        unleased=unleased,
    )


def test_issuance_fails_the_task_before_anything_is_written() -> None:
    spec = resolve({"path": "database/creds/team-a_ro"})
    check_ceiling(resolved_with(spec), issued((lease(1800),)))
    with pytest.raises(TaskFailed) as failed:
        check_ceiling(resolved_with(spec), issued((lease(8760 * 3600, "certificate"),)))
    assert failed.value.reason == TTL_EXCEEDED
    assert failed.value.message.startswith("AgentCredential cert: ")
    with pytest.raises(TaskFailed) as refused:
        check_ceiling(resolved_with(spec), issued((), unleased=True))
    assert refused.value.reason == UNLEASED


def test_a_renewal_granting_more_than_max_ttl_fails_the_task() -> None:
    spec = resolve({"path": "database/creds/team-a_ro"})
    ok = Renewed(expires_at=NOW + HOUR, capped=False, validity=(lease(3600, "renewed lease"),))
    check_renewal(resolved_with(spec), ok, NOW)
    check_renewal(resolved_with(spec), None, NOW)
    long = Renewed(expires_at=NOW + HOUR, capped=False, validity=(lease(86400, "renewed lease"),))
    with pytest.raises(TaskFailed) as failed:
        check_renewal(resolved_with(spec), long, NOW)
    assert (
        failed.value.reason == TTL_EXCEEDED
        and "renewed lease valid for 24h" in failed.value.message
    )
