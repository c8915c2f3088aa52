"""Dynamic credentials: the read that creates a lease, its renewal, and its expiry.

Vault makes the token that read the dynamic path the parent of the lease, so revoking
the token ends the lease (``tokens.revoke_token``). Vault does not shorten a lease's own
TTL to its token's (seen on OpenBao 2.7.2), so ``expires_at`` is the earlier of the two.
A renewal renews the token first (``renew-self``), then the lease; a renewal granting
less than 90 % of the TTL asked is reported as capped.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agentcred.backends.base import Issued, IssueRequest, Renewed, Session
from agentcred.backends.vault.answers import after, as_int, body, earliest, fields, now, seconds
from agentcred.backends.vault.connection import Connection, send
from agentcred.backends.vault.errors import SESSION_GONE_HINT
from agentcred.backends.vault.tokens import token_from
from agentcred.models.ceiling import Validity, certificate_validity, seconds_validity
from agentcred.models.resolved import VaultSpec

CAPPED_BELOW = 0.9  # a renewal granting less than this share of the TTL asked is capped


@dataclass(frozen=True)
class LeasedRead:
    data: Mapping[str, str] = field(repr=False)
    lease_id: str
    duration: int  # seconds; 0: no expiry
    renewable: bool
    certificate: Validity | None = None  # a PKI-style answer's certificate end
    token: int | None = None  # seconds of a token in the answer (an ``auth`` block)


async def read_dynamic(
    conn: Connection, request: IssueRequest, vault: VaultSpec, client: Any, session: Session
) -> Issued:
    """Read the dynamic path with the credential's token, and fit the lease to the TTL."""
    dynamic = vault.dynamic
    assert dynamic is not None  # validation.target checked: exactly one of dynamic or kv
    ttl = seconds(request.ttl)
    issued_at = now()
    action = f"{dynamic.http_method} {dynamic.path}"
    method, path, params = dynamic.http_method, dynamic.path, dynamic.params
    lease = lease_from(await conn.call(action, send, client, method, path, params), action)
    if lease.renewable and lease.lease_id and lease.duration != ttl:
        action = f"renewing lease {lease.lease_id} to the credential's TTL"
        renew = client.sys.renew_lease
        answer = await conn.call(action, renew, lease_id=lease.lease_id, increment=ttl)
        lease = replace(lease, duration=as_int(body(answer, action).get("lease_duration")))
    lease_end = after(issued_at, lease.duration)
    # Only a lease is ended with its token; a response without one ends on its own.
    token_end = session.expires_at if lease.lease_id else None
    cert_end = lease.certificate.until if lease.certificate else None
    return Issued(
        data=lease.data,
        lease_id=lease.lease_id,
        issued_at=issued_at,
        expires_at=earliest(lease_end, token_end, cert_end),
        renewable=lease.renewable and bool(lease.lease_id),
        session=session,
        validity=validity(lease, issued_at),
        unleased=not lease.lease_id,
    )


async def renew(conn: Connection, client: Any, lease_id: str, ttl: datetime.timedelta) -> Renewed:
    """Renew the token (``client``'s) and then the lease, each by the credential's TTL."""
    secs = seconds(ttl)
    started = now()
    action = "renewing the credential's token (auth/token/renew-self)"
    answer = await conn.call(
        action, client.auth.token.renew_self, increment=secs, hint=SESSION_GONE_HINT
    )
    granted = [token_from(answer, action).ttl]
    validities: tuple[Validity, ...] = ()
    if lease_id:
        action = f"renewing lease {lease_id}"
        answer = await conn.call(action, client.sys.renew_lease, lease_id=lease_id, increment=secs)
        granted.append(as_int(body(answer, action).get("lease_duration")))
        validities = (seconds_validity("renewed lease", started, granted[-1]),)
    shortest = min((g for g in granted if g > 0), default=secs)
    return Renewed(
        expires_at=started + datetime.timedelta(seconds=shortest),
        capped=shortest < CAPPED_BELOW * secs,
        validity=validities,
    )


def lease_from(response: Any, action: str) -> LeasedRead:
    answer = body(response, action)
    raw = answer.get("data")
    auth = answer.get("auth")
    return LeasedRead(
        data=fields(raw, action),
        lease_id=str(answer.get("lease_id") or ""),
        duration=as_int(answer.get("lease_duration")),
        renewable=bool(answer.get("renewable")),
        certificate=certificate_validity(raw) if isinstance(raw, Mapping) else None,
        token=as_int(auth.get("lease_duration")) if isinstance(auth, Mapping) else None,
    )


def validity(lease: LeasedRead, issued_at: datetime.datetime) -> tuple[Validity, ...]:
    """Every expiry a dynamic answer carries, for the maxTTL check (models/ceiling.py)."""
    found = []
    if lease.lease_id:
        found.append(seconds_validity("lease", issued_at, lease.duration))
    if lease.token is not None:
        found.append(seconds_validity("token", issued_at, lease.token))
    if lease.certificate is not None:
        found.append(lease.certificate)
    return tuple(found)
