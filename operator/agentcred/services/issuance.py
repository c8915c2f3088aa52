"""Issue one credential for one task: resolve the AgentCredential, log in as the agent,
persist the session (write-ahead), issue, render the template, write the Secret.

The order matters for crash safety: the session that parents the lease is in the
cluster before the lease exists, so a crash at any later point leaves a lease that
the task's end (or the orphan sweep) still finds and revokes.

What comes back is checked before anything is written (models/ceiling.py): a lease,
token, certificate or STS session valid past the backend's ``maxTTL`` (plus 5 minutes)
is revoked with its session and the task fails ``TTLExceeded``; a dynamic answer
without a lease fails ``Unleased`` unless the backend sets ``vault.allowUnleased``.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span

from agentcred import tracing
from agentcred.backends.base import (
    Backend,
    BackendInvalidConfig,
    BackendUnavailable,
    Capabilities,
    Identity,
    Issued,
    IssueRequest,
    Lease,
    Session,
    SessionBackend,
)
from agentcred.kube import secrets, tokens
from agentcred.kube.errors import KubeError, KubeNotFound, KubeSecretCollision
from agentcred.kube.secrets import SecretInfo
from agentcred.models import ceiling
from agentcred.models import identity as task_identity
from agentcred.models.api_names import MANAGED_BY_US, Annotation, Label, Reason
from agentcred.models.credential import parse_credential_spec
from agentcred.models.errors import SpecError, retry_decision
from agentcred.models.names import label_value
from agentcred.models.parse import to_json
from agentcred.models.resolved import ResolvedCredential
from agentcred.models.status import CredentialEntry, timestamp
from agentcred.models.task import CredentialRef
from agentcred.services import (
    cluster_view,
    lease_records,
    revocation,
    static_reads,
    task_status,
)
from agentcred.services.authorization import Refused, authorize_credential, quarantined
from agentcred.services.deps import Deps
from agentcred.services.errors import TaskFailed, TaskRetry
from agentcred.services.task_view import TaskView
from agentcred.services.templating import Template, TemplateError, parse
from agentcred.services.timing import (
    SHARED_MARGIN,
    capped_ttl,
    renew_at,
    shared_refresh_at,
    shared_refresh_point,
)

# TokenRequest lifetime: only long enough to log in. A token is never reused by another
# login (docs/security.md, "Agent tokens are not reused": a ServiceAccount re-created
# under its name would turn a cached token into a permanent login failure).
TOKEN_SECONDS = 600


class ReferenceMissing(BackendUnavailable):
    """A ServiceAccount or Secret the credential needs does not exist (yet): retry."""

    reason = Reason.REFERENCE_NOT_FOUND


@dataclass(frozen=True)
class BoundCredential:
    """A task's credential after ``resolve``: authorized and bound to the Backend serving it.

    ``spec`` is the pure model (the credential merged with its backend's connection; its
    kind's name is ``spec.backend_kind``); ``backend`` is the live ``Backend`` object.
    What an issuance asks of them more than once is worked out here, once (``bind``): the
    backend's capabilities for this spec and the parsed template.
    """

    ref: CredentialRef
    spec: ResolvedCredential  # the credential merged with its backend's connection
    raw_spec: Mapping[str, Any]  # its JSON, as lease records keep it
    backend: Backend
    caps: Capabilities  # backend.capabilities(spec)
    template: Template  # spec.template, parsed


def bind(ref: CredentialRef, spec: ResolvedCredential, backend: Backend) -> BoundCredential:
    """``spec`` bound to ``backend``: its capabilities asked and its template parsed once
    for the whole issuance (TemplateError when the template is malformed)."""
    return BoundCredential(
        ref=ref,
        spec=spec,
        raw_spec=to_json(spec),
        backend=backend,
        caps=backend.capabilities(spec),
        template=parse(spec.template),
    )


async def resolve(deps: Deps, task: TaskView, ref: CredentialRef) -> BoundCredential:
    """The AgentCredential of the task's namespace named by ``ref``, allowed by its
    CredentialBackend for this task's namespace and ServiceAccount, parsed and checked."""
    account = task.spec.service_account_name
    with tracing.span(tracing.AUTHORIZE, task, service_account=account, credential=ref.name) as s:
        bound = await _resolve(deps, task, ref)
        tracing.note(s, backend=bound.spec.backend_kind)
        return bound


async def _resolve(deps: Deps, task: TaskView, ref: CredentialRef) -> BoundCredential:
    found = await cluster_view.credential(deps, task.namespace, ref.name)
    if found is None:
        raise TaskRetry(
            Reason.CREDENTIAL_NOT_FOUND,
            f"AgentCredential {task.namespace}/{ref.name} does not exist "
            "(a task can only use AgentCredentials of its own namespace)",
        )
    try:
        requested = parse_credential_spec(found)
    except SpecError as exc:
        raise TaskFailed(Reason.INVALID_CREDENTIAL, f"AgentCredential {ref.name}: {exc}") from None
    quarantine = await quarantined(deps, task)
    if quarantine is not None:
        raise TaskFailed(Reason.QUARANTINED, quarantine.message)
    try:
        spec = await authorize_credential(
            deps, task.namespace, ref.name, requested, task.spec.service_account_name
        )
    except Refused as exc:
        if retry_decision(exc).permanent:
            raise TaskFailed(exc.reason, exc.message) from None
        raise TaskRetry(exc.reason, exc.message) from None
    try:
        backend = deps.backends.for_spec(spec)
        backend.validate(spec)
        return bind(ref, spec, backend)
    except (SpecError, BackendInvalidConfig) as exc:
        raise TaskFailed(Reason.INVALID_CREDENTIAL, f"AgentCredential {ref.name}: {exc}") from None
    except TemplateError as exc:
        raise TaskFailed(Reason.TEMPLATE_ERROR, f"AgentCredential {ref.name}: {exc}") from None


def identity(deps: Deps, task: TaskView) -> Identity:
    """The agent's identity: TokenRequest tokens of its ServiceAccount, its namespace's Secrets."""
    namespace, account = task.namespace, task.spec.service_account_name

    async def token_for(audience: str) -> str:
        try:
            with tracing.span(tracing.TOKEN_REQUEST, task, service_account=account):
                return await tokens.request_token(
                    deps.api, namespace, account, audience, TOKEN_SECONDS
                )
        except KubeNotFound:
            raise ReferenceMissing(f"ServiceAccount {namespace}/{account} not found") from None
        except KubeError as exc:
            raise BackendUnavailable(
                f"TokenRequest for {namespace}/{account} failed: {exc}"
            ) from None

    own = deps.settings.namespace  # operator-side Secrets live in the operator's namespace

    async def secret_value(name: str, key: str) -> str:
        try:
            return await secrets.read_secret_value(deps.api, own, name, key)
        except KubeNotFound as exc:
            raise ReferenceMissing(str(exc)) from None
        except KubeError as exc:
            raise BackendUnavailable(f"reading Secret {own}/{name} failed: {exc}") from None

    return Identity(
        namespace=namespace,
        service_account=account,
        task=task.name,
        task_uid=task.uid,
        token_for=token_for,
        secret_value=secret_value,
    )


def request_for(deps: Deps, task: TaskView, bound: BoundCredential, cid: str) -> IssueRequest:
    ttl = capped_ttl(bound.spec.ttl, deps.clock(), task.deadline)
    return IssueRequest(
        credential=bound.ref.name,
        spec=bound.spec,
        identity=identity(deps, task),
        ttl=ttl,
        correlation_id=cid,
        deadline=task.deadline,
    )


def next_action_at(
    deps: Deps, task: TaskView, bound: BoundCredential, issued: Issued
) -> datetime.datetime | None:
    """When to look at a fresh credential again: re-read a static one on its shared
    refresh grid, renew (or re-issue) a lease at its renewal percent, never if it has
    no expiry."""
    if bound.caps.static:
        key = static_key(task, bound)
        return shared_refresh_at(deps.clock(), bound.spec.refresh_interval, key, deps.rng)
    if issued.expires_at is not None:
        return renew_at(issued.issued_at, issued.expires_at, bound.spec.renewal_percent, deps.rng)
    return None


def entry_for(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    bound: BoundCredential,
    issued: Issued,
    info: SecretInfo,
    previous: CredentialEntry | None,
) -> CredentialEntry:
    """The status entry of a credential just issued (or read) into its Secret."""
    return task_status.issued_entry(
        name=ref.name,
        secret_name=task.secret_name(ref),
        backend=bound.spec.backend_kind,
        issued=issued,
        caps=bound.caps,
        renew_at=next_action_at(deps, task, bound, issued),
        secret_version=info.resource_version,
        previous=previous,
    )


async def issue(
    deps: Deps,
    task: TaskView,
    bound: BoundCredential,
    *,
    record_key: str,
    cid: str,
    records: dict[str, lease_records.LeaseRecord] | None = None,
) -> tuple[Issued, SecretInfo]:
    """Issue (or read) the credential and write the generated Secret. ``records``, when
    given, receives the task's lease records as this issue left them (a re-issue then
    rotates them without reading them again).

    Nothing looks at the Secret's name first: the write creates it, and a 409 is the
    never-overwrite branch (``write_secret``). When the name is someone else's, what was
    just issued is revoked (its session and record gone) and the task waits."""
    deps.cleaned.discard(task.uid)  # it will hold something again: its end looks afresh
    if bound.caps.static:
        issued = await _read_static(deps, task, bound, cid)
        extra = _render_or_fail(bound, issued)  # per task: the read may be shared
    else:
        issued, extra = await _issue_lease(deps, task, bound, record_key, cid, records)
    try:
        data = {**issued.data, **extra}
        info = await write_secret(deps, task, bound.ref, data, issued.expires_at)
    except TaskRetry:  # the name is taken: hand out nothing, keep nothing
        if issued.session is not None:
            await discard(deps, task, bound, issued.session, record_key, cid)
        raise
    return issued, info


async def _read_static(deps: Deps, task: TaskView, bound: BoundCredential, cid: str) -> Issued:
    """A static secret, read once per point of its refresh grid for everyone sharing it
    (``timing.shared_refresh_at``): the read is kept until just before the next point."""
    key = static_key(task, bound)
    now = deps.clock()
    point = shared_refresh_point(now, bound.spec.refresh_interval, key)
    keep = (point - now).total_seconds() - SHARED_MARGIN  # > 0: the point is past the margin
    return await deps.static_reads.read(
        key,
        keep,
        lambda: _issue_unrecorded(deps, task, bound, request_for(deps, task, bound, cid)),
        backend=bound.spec.backend_kind,
    )


def static_key(task: TaskView, bound: BoundCredential) -> static_reads.Key:
    """Who reads which static secret: tasks with the same key share reads."""
    spec = bound.spec
    block = bound.raw_spec.get(spec.backend_kind) or {}
    return static_reads.read_key(
        task.namespace, task.spec.service_account_name, spec.backend_kind, block
    )


async def _issue_lease(
    deps: Deps,
    task: TaskView,
    bound: BoundCredential,
    record_key: str,
    cid: str,
    written: dict[str, lease_records.LeaseRecord] | None = None,
) -> tuple[Issued, dict[str, str]]:
    """Log in (recording the session first), then issue; the credential and its rendered
    template keys."""
    request = request_for(deps, task, bound, cid)
    backend = bound.backend
    session: Session | None = None
    target = bound.spec.target
    if keeps_no_record(bound):
        issued = await _issue_unrecorded(deps, task, bound, request)
        return issued, _render_or_fail(bound, issued)
    # Records this process knows of are read once before the login (a stale session under
    # the key retired); otherwise none is expected and the write-ahead record is created
    # with no read first (a 409 takes the stale-session branch then, _write_ahead).
    known = lease_records.known(deps, task)
    if known:
        records = await _retire_stale(deps, task, record_key)  # identity checked there
    else:
        records = {}
        check_identity(task, records)  # against the status; found records: _write_ahead
    if isinstance(backend, SessionBackend):
        async with deps.limits.slot(task.namespace, target):
            with _backend_span(tracing.LOGIN, task, bound, cid):
                session = await backend.login(request)
        record = lease_records.LeaseRecord(
            credential=bound.ref.name,
            backend=bound.spec.backend_kind,
            spec=bound.raw_spec,
            lease_id="",
            session=session,
            service_account=task.spec.service_account_name,
        )
        try:  # write-ahead: before the lease exists
            records = await _write_ahead(deps, task, record_key, record, records if known else None)
        except BaseException:
            await _revoke_unissued(deps, task, bound, session, cid)
            raise
    try:
        if isinstance(backend, SessionBackend) and session is not None:
            async with deps.limits.slot(task.namespace, target):
                with _backend_span(tracing.BACKEND_ISSUE, task, bound, cid) as span:
                    issued = await backend.issue_with(request, session)
                    tracing.note(span, lease_id=issued.lease_id)
            if issued.session is None:  # a static read keeps no session
                records.pop(record_key, None)
                await lease_records.save(deps, task, records)
        else:
            async with deps.limits.slot(task.namespace, target):
                with _backend_span(tracing.BACKEND_ISSUE, task, bound, cid) as span:
                    issued = await backend.issue(request)
                    tracing.note(span, lease_id=issued.lease_id)
        check_ceiling(bound, issued)  # an over-long lease is revoked below
        extra = _render_or_fail(bound, issued)  # fail before anything is written
    except BaseException:
        if session is not None:
            await discard(deps, task, bound, session, record_key, cid)
        raise
    if written is not None:
        written.update(records)
    return issued, extra


async def _issue_unrecorded(
    deps: Deps, task: TaskView, bound: BoundCredential, request: IssueRequest
) -> Issued:
    """Issue (or read) what keeps no session record (``keeps_no_record``)."""
    async with deps.limits.slot(task.namespace, bound.spec.target):
        with _backend_span(tracing.BACKEND_ISSUE, task, bound, request.correlation_id) as span:
            issued = await bound.backend.issue(request)
            tracing.note(span, lease_id=issued.lease_id)
    check_ceiling(bound, issued)
    return issued


def _backend_span(
    name: str, task: TaskView, bound: BoundCredential, cid: str
) -> AbstractContextManager[Span | None]:
    """A span around one backend call for ``bound`` (tracing.py; a no-op when off)."""
    return tracing.span(
        name,
        task,
        service_account=task.spec.service_account_name,
        credential=bound.ref.name,
        backend=bound.spec.backend_kind,
        correlation_id=cid,
    )


def keeps_no_record(bound: BoundCredential) -> bool:
    """A static read, or a backend without sessions: nothing to record before issuing.

    A static read's login (Vault: a token used for one read) is revoked by the backend
    right after the read and never leaves the process, so it gets no write-ahead record:
    if the operator dies between that login and its revocation, the token expires at
    the end of its role's TTL, unused. This saves a lease-record Secret's create, delete and
    three reads per task on the most common credential."""
    return bound.caps.static or not isinstance(bound.backend, SessionBackend)


def check_ceiling(bound: BoundCredential, issued: Issued) -> None:
    """TaskFailed (``TTLExceeded`` / ``Unleased``) when what came back must not be handed
    out; the caller revokes the credential's session, and nothing is written."""
    spec = bound.spec
    found = ceiling.breach(
        spec.max_ttl,
        issued.issued_at,
        issued.validity,
        revocable=bound.caps.revocable,
        unleased=issued.unleased,
        allow_unleased=spec.vault is not None and spec.vault.allow_unleased,
    )
    if found is not None:
        raise TaskFailed(found.reason, f"AgentCredential {bound.ref.name}: {found.message}")


def _render_or_fail(bound: BoundCredential, issued: Issued) -> dict[str, str]:
    """The template's keys rendered from what was issued (parsed once, in ``bind``);
    TaskFailed ``TemplateError`` when it names a field the credential does not have."""
    try:
        return bound.template.render(issued.data)
    except TemplateError as exc:
        raise TaskFailed(
            Reason.TEMPLATE_ERROR, f"AgentCredential {bound.ref.name}: {exc}"
        ) from None


async def _retire_stale(
    deps: Deps, task: TaskView, key: str
) -> dict[str, lease_records.LeaseRecord]:
    """A session already under ``key`` is from an attempt that never completed (the
    operator died before recording it, or its Secret was lost): revoke it before its
    slot is reused, or park it under a unique key so that cleanup and the sweep still
    find it. A write-ahead record is never overwritten. Returns the task's records as
    read (the parked one included), for the caller's one write of the new record; until
    that write, an unrevoked stale session stays recorded under ``key``. TaskFailed
    ``IdentityChanged`` when the records were logged in as another account.

    Called before the login when this process knows the task's records, otherwise only
    when creating them found some (``_write_ahead``): the session just logged in is then
    revoked if this fails."""
    records = await lease_records.load(deps, task.uid)
    check_identity(task, records)
    stale = records.pop(key, None)
    if stale is not None and not await revocation.revoke_for_task(deps, task, stale):
        records[f"{key}.stale-{uuid.uuid4().hex[:8]}"] = stale
    return records


async def _write_ahead(
    deps: Deps,
    task: TaskView,
    key: str,
    record: lease_records.LeaseRecord,
    records: dict[str, lease_records.LeaseRecord] | None,
) -> dict[str, lease_records.LeaseRecord]:
    """Put ``record`` under ``key`` in the cluster; the task's records as written.
    ``records`` None: none known to this process, so the lease-record Secret is created
    with no read first; one already there (409: an attempt that never completed, in this
    process or an earlier one) is read, its identity checked and the stale session under
    ``key`` retired (``_retire_stale``) before one write of all of them."""
    if records is None:
        if await lease_records.create(deps, task, {key: record}):
            return {key: record}
        records = await _retire_stale(deps, task, key)
    records[key] = record
    await lease_records.save(deps, task, records)
    return records


async def _revoke_unissued(
    deps: Deps, task: TaskView, bound: BoundCredential, session: Session, cid: str
) -> None:
    """A session logged in for nothing (its record could not be written, or the records
    found say the task's identity changed): revoked, best effort; the records in the
    cluster, whatever they hold, are left as they are (a stale session stays findable)."""
    try:
        async with deps.limits.slot(task.namespace, bound.spec.target):
            await bound.backend.revoke(Lease(bound.spec, "", session, cid))
    except Exception:
        return


def check_identity(task: TaskView, records: Mapping[str, lease_records.LeaseRecord]) -> None:
    """TaskFailed ``IdentityChanged`` when the task's sessions were logged in as another
    account than its spec names now: never log in, or renew, as another identity."""
    accounts = [r.service_account for r in records.values()]
    verdict = task_identity.check(task.status, task.spec, accounts)
    if verdict.changed:
        raise TaskFailed(task_identity.IDENTITY_CHANGED, verdict.message)


async def discard(
    deps: Deps, task: TaskView, bound: BoundCredential, session: Session, key: str, cid: str
) -> None:
    """Undo a login whose issuance failed: revoke the session, forget it."""
    try:
        async with deps.limits.slot(task.namespace, bound.spec.target):
            await bound.backend.revoke(Lease(bound.spec, "", session, cid))
    except Exception:
        return
    await lease_records.drop(deps, task, key)


async def write_secret(
    deps: Deps,
    task: TaskView,
    ref: CredentialRef,
    data: Mapping[str, str],
    expires_at: datetime.datetime | None,
) -> SecretInfo:
    name = task.secret_name(ref)
    try:
        with tracing.span(tracing.SECRET_WRITE, task, credential=ref.name):
            info = await secrets.write_secret(
                deps.api,
                task.namespace,
                name,
                data,
                labels={
                    **MANAGED_BY_US,
                    Label.TASK: label_value(task.name),
                    Label.CREDENTIAL: ref.name,
                },
                annotations={Annotation.EXPIRES_AT: timestamp(expires_at) if expires_at else ""},
                owner=task.owner,
                known_version=deps.written.get((task.namespace, name)),  # ours: one request
            )
    except KubeSecretCollision:
        raise TaskRetry(
            Reason.SECRET_CONFLICT,
            f"Secret {task.namespace}/{name} exists and is not managed by this task: agentcred "
            "never overwrites a Secret it did not create; remove or rename that Secret, or set "
            "spec.credentials[].secretName (the task waits and retries)",
        ) from None
    deps.written[(task.namespace, name)] = info.resource_version
    return info


async def annotate_expiry(
    deps: Deps, task: TaskView, ref: CredentialRef, expires_at: datetime.datetime
) -> SecretInfo | None:
    """Keep the generated Secret's expiry annotation right after an in-place renewal."""
    name = task.secret_name(ref)
    info = await secrets.annotate_secret(
        deps.api,
        task.namespace,
        name,
        {Annotation.EXPIRES_AT: timestamp(expires_at)},
        owner_uid=task.uid,
        known_version=deps.written.get((task.namespace, name)),
    )
    if info is not None:
        deps.written[(task.namespace, name)] = info.resource_version
    return info


async def delete_secret(deps: Deps, task: TaskView, ref: CredentialRef) -> None:
    name = task.secret_name(ref)
    known = deps.written.pop((task.namespace, name), None)  # as we wrote it: one request
    if await secrets.delete_secret(
        deps.api, task.namespace, name, owner_uid=task.uid, known_version=known
    ):
        deps.note_removed(task.namespace, name)
