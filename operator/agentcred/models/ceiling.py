"""maxTTL is a ceiling on what is issued, not on what is asked.

A CredentialBackend's ``maxTTL`` caps the ``ttl`` an AgentCredential asks for, but an
engine decides what it hands out: a role's own default TTL, a ``ttl`` (or ``not_after``)
param, a lease that cannot be renewed shorter, an STS duration. So the operator checks
what *came back*, before any Secret is written, with the pure functions here:

* :func:`breach` compares every expiry a backend reported (a lease, a token, a
  certificate, an STS session: :class:`Validity`) against ``maxTTL`` plus
  :data:`GRACE`; past it, the caller revokes the credential (where the backend can) and
  fails the task with reason :data:`TTL_EXCEEDED`. A dynamic Vault response without a
  lease (:data:`UNLEASED`) is refused unless the backend sets ``vault.allowUnleased``:
  nothing can renew or revoke it, so it is dropped, never written.
* :func:`capped_param_ttl` caps a tenant's ``params.ttl`` (only sent at all when the
  backend lists ``ttl`` in ``vault.allowedParams``) by ``maxTTL``.
* :func:`sts_duration` caps an STS ``DurationSeconds`` by ``maxTTL`` and by the time
  left until the task's deadline, within STS's 900..43200 seconds.
* :func:`certificate_validity` reads a certificate's end from a PKI-style response
  (Vault's ``expiration`` field and the PEM's own ``notAfter``, parsed here without a
  crypto library: the operator's ``vault`` extra has none), or an OpenSSH certificate's
  ``valid before`` from an SSH signing answer (``signed_key``).

Messages name what came back, its expiry and the ceiling: never a credential value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agentcred.models.api_names import Reason
from agentcred.models.duration import format_duration

GRACE = timedelta(minutes=5)  # clock skew and engines that round up (PKI backdates 30 s)
TTL_EXCEEDED = Reason.TTL_EXCEEDED
UNLEASED = Reason.UNLEASED
STS_MIN_SECONDS = 900
STS_MAX_SECONDS = 43200


@dataclass(frozen=True)
class Validity:
    """One expiry a backend's answer carries: ``what`` ("lease", "certificate", ...) is
    valid until ``until``; None: no expiry (or none that could be read)."""

    what: str
    until: datetime | None


@dataclass(frozen=True)
class Breach:
    """Why an issued credential must not be handed out: the task's failure reason and
    a message for its status and Events."""

    reason: str
    message: str


def seconds_validity(what: str, start: datetime, seconds: int) -> Validity:
    """``what`` valid ``seconds`` from ``start`` (0 or less: no expiry, as Vault says it)."""
    return Validity(what, start + timedelta(seconds=seconds) if seconds > 0 else None)


def breach(
    max_ttl: timedelta | None,
    issued_at: datetime,
    validity: Iterable[Validity],
    *,
    revocable: bool,
    unleased: bool = False,
    allow_unleased: bool = False,
) -> Breach | None:
    """The reason not to hand out a credential issued at ``issued_at``, or None.

    ``revocable``: whether revoking the credential at the backend ends it (a Vault lease
    through its token: yes; an STS session or an unleased response: no), which only
    changes what the message says happened to it. ``unleased``: a dynamic response with
    no lease (Vault), refused unless ``allow_unleased``.
    """
    if unleased and not allow_unleased:
        return Breach(
            UNLEASED,
            "the backend answered without a lease: nothing could renew or revoke what it "
            "issued, so it was dropped and nothing was written (the CredentialBackend must "
            "set vault.allowUnleased: true to accept unleased responses, which then live "
            "until their own expiry, out of the operator's reach)",
        )
    if max_ttl is None:
        return None
    ceiling = max_ttl + GRACE
    for item in validity:
        if item.until is not None and item.until - issued_at <= ceiling:
            continue
        if item.until is None:
            came = f"a {item.what} with no expiry"
        else:
            came = (
                f"a {item.what} valid for {_span(item.until - issued_at)} "
                f"(until {_stamp(item.until)})"
            )
        if revocable and not unleased:
            fate = "it was revoked at the backend at once"
        else:
            fate = "it cannot be revoked at the backend and stays valid until its own expiry"
        return Breach(
            TTL_EXCEEDED,
            f"the backend returned {came}, beyond the CredentialBackend's maxTTL of "
            f"{format_duration(max_ttl)} (plus {format_duration(GRACE)} grace): {fate}; "
            "nothing was written",
        )
    return None


def capped_param_ttl(value: Any, max_ttl: timedelta | None) -> Any:
    """A ``params.ttl`` no longer than ``max_ttl`` (as ``<seconds>s`` when cut), else as is.

    Vault reads a duration param as whole seconds (``3600``, ``"3600"``) or a Go duration
    with an optional ``d`` unit (``"90m"``, ``"1d"``). Raises ValueError on anything else:
    a value the operator cannot read is one it cannot cap.
    """
    seconds = vault_duration_seconds(value)
    if max_ttl is not None and seconds > max_ttl.total_seconds():
        return f"{math.floor(max_ttl.total_seconds())}s"
    return value


_VAULT_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_VAULT_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+$")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


def vault_duration_seconds(value: Any) -> float:
    """Seconds in a Vault duration param: a number of seconds or a Go duration (``d`` too)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 15m or a number of seconds")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            return float(text)
        if _VAULT_WHOLE.match(text):
            return sum(float(n) * _UNIT[unit] for n, unit in _VAULT_PART.findall(text))
    raise ValueError("must be a duration such as 15m or a number of seconds")


def sts_duration(
    wanted: int,
    *,
    max_ttl: timedelta | None,
    now: datetime,
    deadline: datetime | None,
) -> int:
    """STS ``DurationSeconds``: ``wanted``, at most ``max_ttl`` and the time left until the
    task's ``deadline``, within STS's 900..43200 seconds.

    Less than 900 s left before the deadline still gets 900 s (STS issues nothing
    shorter): the session outlives the deadline by less than 15 minutes, as the session of
    any task that ends early outlives its end (STS sessions cannot be revoked). ``maxTTL``
    itself is never passed: a backend whose maxTTL plus :data:`GRACE` is under 900 s
    serves no STS credential at all (models/policy.py refuses it).
    """
    seconds = wanted
    if max_ttl is not None:
        seconds = min(seconds, math.floor(max_ttl.total_seconds()))
    if deadline is not None:
        seconds = min(seconds, math.ceil((deadline - now).total_seconds()))
    return min(STS_MAX_SECONDS, max(STS_MIN_SECONDS, seconds))


def sts_fits(max_ttl: timedelta | None) -> bool:
    """Whether STS's shortest session (900 s) fits under ``max_ttl`` plus the grace."""
    return max_ttl is None or max_ttl + GRACE >= timedelta(seconds=STS_MIN_SECONDS)


def certificate_validity(data: Mapping[str, Any]) -> Validity | None:
    """The issued certificate's end in a PKI-style answer (``certificate`` plus Vault's
    ``expiration``, Unix seconds), the later of the two when both are there, or in an SSH
    signing answer (``signed_key``); None when the answer holds neither. A certificate
    whose end cannot be read at all counts as one with no expiry (it fails every
    ceiling). CA certificates in the same answer (``issuing_ca``, ``ca_chain``) are the
    issuer's, not what was issued."""
    if "certificate" not in data:
        signed = data.get("signed_key")
        if not isinstance(signed, str):
            return None
        try:
            return Validity("SSH certificate", ssh_certificate_valid_before(signed))
        except ValueError:
            return Validity("SSH certificate", None)
    ends: list[datetime] = []
    expiration = data.get("expiration")
    if isinstance(expiration, str) and expiration.isdigit():
        expiration = int(expiration)
    if isinstance(expiration, int | float) and not isinstance(expiration, bool):
        end = _epoch(expiration)
        if end is None:
            return Validity("certificate", None)  # past what a date can hold: no end
        ends.append(end)
    pem = data.get("certificate")
    if isinstance(pem, str):
        with contextlib.suppress(ValueError):  # unreadable: Vault's expiration, or none
            ends.append(certificate_not_after(pem))
    return Validity("certificate", max(ends) if ends else None)


_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def certificate_not_after(pem: str) -> datetime:
    """``notAfter`` of the first certificate in ``pem`` (X.509 DER read by hand).

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial,
    signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... }, ... }.
    Raises ValueError for anything else.
    """
    found = _PEM.search(pem)
    if found is None:
        raise ValueError("no PEM certificate")
    try:
        der = base64.b64decode("".join(found.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("certificate is not base64") from None
    tag, start, _ = _tlv(der, 0)
    _expect(tag == 0x30)
    tag, pos, _ = _tlv(der, start)  # tbsCertificate
    _expect(tag == 0x30)
    tag, _, end = _tlv(der, pos)
    if tag == 0xA0:  # explicit version
        pos = end
    for _ in range(3):  # serialNumber, signature, issuer
        _, _, pos = _tlv(der, pos)
    tag, inner, _ = _tlv(der, pos)  # validity
    _expect(tag == 0x30)
    _, _, after_not_before = _tlv(der, inner)
    tag, start, end = _tlv(der, after_not_before)
    return _asn1_time(tag, der[start:end])


# Length-prefixed public-key fields between an OpenSSH certificate's nonce and its serial.
_SSH_KEY_FIELDS = {
    "ssh-rsa-cert-v01@openssh.com": 2,  # e, n
    "ssh-dss-cert-v01@openssh.com": 4,  # p, q, g, y
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": 2,  # curve, Q
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": 2,
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": 2,
    "ssh-ed25519-cert-v01@openssh.com": 1,  # pk
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": 3,  # curve, Q, application
    "sk-ssh-ed25519-cert-v01@openssh.com": 2,  # pk, application
}
_SSH_FOREVER = 2**64 - 1


def ssh_certificate_valid_before(text: str) -> datetime | None:
    """``valid before`` of an OpenSSH certificate (``<type> <base64> [comment]``); None:
    valid forever. Layout (PROTOCOL.certkeys): string type, string nonce, the key's
    fields, uint64 serial, uint32 type, string key id, string principals, uint64 valid
    after, uint64 valid before. Raises ValueError for anything else."""
    parts = text.split()
    if len(parts) < 2 or parts[0] not in _SSH_KEY_FIELDS:
        raise ValueError("not an OpenSSH certificate")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("certificate is not base64") from None
    pos = 0

    def take(size: int) -> bytes:
        nonlocal pos
        if pos + size > len(blob):
            raise ValueError("truncated certificate")
        pos += size
        return blob[pos - size : pos]

    def string() -> bytes:
        return take(int.from_bytes(take(4), "big"))

    if string().decode("ascii", "replace") != parts[0]:
        raise ValueError("certificate type mismatch")
    for _ in range(1 + _SSH_KEY_FIELDS[parts[0]]):  # nonce, then the key's fields
        string()
    take(8 + 4)  # serial, type
    string()  # key id
    string()  # valid principals
    take(8)  # valid after
    before = int.from_bytes(take(8), "big")
    return None if before == _SSH_FOREVER else _epoch(before)


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    if pos + 2 > len(der):
        raise ValueError("truncated certificate")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or pos + size > len(der):
            raise ValueError("bad DER length")
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    if pos + length > len(der):
        raise ValueError("truncated certificate")
    return tag, pos, pos + length


def _expect(condition: bool) -> None:
    if not condition:
        raise ValueError("not an X.509 certificate")


def _asn1_time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii", "replace")
    if tag == 0x17 and re.fullmatch(r"\d{12}Z", text):  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif not (tag == 0x18 and re.fullmatch(r"\d{14}Z", text)):  # GeneralizedTime
        raise ValueError("unreadable certificate time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def _epoch(seconds: float) -> datetime | None:
    """A Unix time as a datetime; None past what a datetime holds (year 9999)."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _span(value: timedelta) -> str:
    return format_duration(max(value, timedelta(0)))


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
