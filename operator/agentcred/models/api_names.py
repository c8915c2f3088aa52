"""The names other programs match on: the API group and version, resource plurals and
kinds, label and annotation keys, condition types, condition reasons and Event reasons.

Each is spelled here once, and the operator, its tests and its docs check read them from
here. Changing a value is an API change: kubectl selectors, alerting rules, GitOps diffs
and docs/troubleshooting.md match on it. Reasons are ``StrEnum`` members, so they are
plain strings on the wire, in logs and in comparisons.
"""

# ruff: noqa: S105 - reason words that name a Kubernetes Secret, not secrets

from __future__ import annotations

from enum import StrEnum
from typing import Final

GROUP: Final = "agentcred.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
MANAGER: Final = "agentcred"  # the value of the managed-by label
# The finalizer operators before issue 22 put on every AgentTask (Kopf's, from its delete
# handler). None is added any more: a task is revoked on its DELETED event and the sweep
# revokes what a missed deletion left. Still named so an upgraded operator can finalize a
# task that carries it and remove it (services/task_events.py).
FINALIZER: Final = f"{GROUP}/revoke-credentials"
# Kopf's finalizer setting: a name no object carries (AgentTasks are driven by event
# handlers and nothing else has a delete handler), so Kopf never removes FINALIZER itself.
KOPF_FINALIZER: Final = f"{GROUP}/kopf-finalizer"
KOPF_PREFIX: Final = GROUP  # Kopf's progress and diff-base annotations live under it
# The annotations Kopf wrote on AgentTasks before issue 22 (its diff-base, its marker,
# its touch key and the progress of each old handler id, as Kopf spells them:
# tests/unit/test_kopf_leftovers.py checks them against Kopf's own storages). Removed
# with FINALIZER in one PATCH the first time an upgraded operator sees the task.
KOPF_TASK_ANNOTATIONS: Final = tuple(
    f"{KOPF_PREFIX}/{key}"
    for key in (
        "last-handled-configuration",
        "kopf-managed",
        "touch-dummy",
        "resume",
        "start",
        "complete.spec.completed",
        "complete.spec.failureReason",
        "identity_changed.spec.serviceAccountName",
        "identity_changed.spec.credentials",
        "edited.spec",
        "finalize",
    )
)


class Plural(StrEnum):
    TASKS = "agenttasks"
    CREDENTIALS = "agentcredentials"
    BACKENDS = "credentialbackends"
    QUARANTINES = "credentialquarantines"
    APPROVALS = "agenttaskapprovals"


class Kind(StrEnum):
    TASK = "AgentTask"
    CREDENTIAL = "AgentCredential"
    BACKEND = "CredentialBackend"
    QUARANTINE = "CredentialQuarantine"
    APPROVAL = "AgentTaskApproval"


KIND_OF: Final = {
    Plural.TASKS: Kind.TASK,
    Plural.CREDENTIALS: Kind.CREDENTIAL,
    Plural.BACKENDS: Kind.BACKEND,
    Plural.QUARANTINES: Kind.QUARANTINE,
    Plural.APPROVALS: Kind.APPROVAL,
}


class Label(StrEnum):
    MANAGED_BY = "app.kubernetes.io/managed-by"
    NAME = "app.kubernetes.io/name"
    COMPONENT = "app.kubernetes.io/component"
    TASK = f"{GROUP}/task"  # on generated Secrets and lease records (maybe shortened)
    CREDENTIAL = f"{GROUP}/credential"
    SESSION = f"{GROUP}/session"  # marks a lease-record Secret (on-cluster name kept)
    TASK_UID = f"{GROUP}/task-uid"
    TASK_NAMESPACE = f"{GROUP}/task-namespace"


class Annotation(StrEnum):
    EXPIRES_AT = f"{GROUP}/expires-at"  # on a generated Secret: when its credential ends
    TASK_NAME = f"{GROUP}/task-name"  # a task's full name (a label value may be shortened)
    # On an AgentTask: a person asks for its credentials to be renewed (or re-read) now;
    # honoured once per value (`kubectl agentcred renew`).
    RENEW_REQUESTED_AT = f"{GROUP}/renew-requested-at"
    CREATED_BY = f"{GROUP}/created-by"  # on an AgentTask: its creator, stamped at admission
    APPROVED_BY = f"{GROUP}/approved-by"  # on an AgentTaskApproval: its author, the same way
    # On an AgentTask, stamped by its creator (agentcred_client): the session's id, reused
    # as the correlation id of every action on the task (models/correlation.py), and the
    # W3C trace context of the creator's span.
    CORRELATION_ID = f"{GROUP}/correlation-id"
    TRACEPARENT = f"{GROUP}/traceparent"


MANAGED_BY_US: Final = {Label.MANAGED_BY.value: MANAGER}
OPERATOR_POD: Final = {Label.NAME.value: MANAGER, Label.COMPONENT.value: "operator"}
MANAGED_SELECTOR: Final = f"{Label.MANAGED_BY}={MANAGER}"


class ConditionType(StrEnum):
    READY = "Ready"
    SPEC_VALID = "SpecValid"
    BACKEND_REACHABLE = "BackendReachable"
    COMPLETE = "Complete"  # CredentialQuarantine: every matched task ended and revoked
    REVOKED = "Revoked"  # AgentTask: its leases revoked and its Secrets deleted after it ended


class Reason(StrEnum):
    """Condition reasons (and the reasons errors carry into them)."""

    # AgentTask Ready
    CREDENTIALS_ISSUED = "CredentialsIssued"
    COMPLETED = "Completed"
    DELETED = "Deleted"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    OWNER_DELETED = "OwnerDeleted"
    POD_FAILED = "PodFailed"
    PODS_DELETED = "PodsDeleted"
    PODS_SUCCEEDED = "PodsSucceeded"
    RENEW_FAILED = "RenewFailed"
    REVOKE_FAILED = "RevokeFailed"
    CREDENTIAL_EXPIRED = "CredentialExpired"
    IDENTITY_CHANGED = "IdentityChanged"
    SECRET_CONFLICT = "SecretConflict"
    TEMPLATE_ERROR = "TemplateError"
    REFERENCE_NOT_FOUND = "ReferenceNotFound"
    CREDENTIAL_NOT_FOUND = "CredentialNotFound"
    INVALID_CREDENTIAL = "InvalidCredential"
    NOT_ALLOWED = "NotAllowed"
    TTL_EXCEEDED = "TTLExceeded"
    UNLEASED = "Unleased"
    QUARANTINED = "Quarantined"
    # CredentialQuarantine Complete
    ENFORCED = "Enforced"
    REVOKING = "Revoking"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVAL_DENIED = "ApprovalDenied"
    APPROVAL_TIMED_OUT = "ApprovalTimedOut"
    APPROVAL_VOIDED = "ApprovalVoided"
    AGENT_REPORTED = "AgentReported"  # the agent set spec.failureReason
    # AgentTask Revoked
    CREDENTIALS_REVOKED = "CredentialsRevoked"
    REVOCATION_PENDING = "RevocationPending"
    # AgentCredential SpecValid / Ready, CredentialBackend Ready
    SPEC_VALID = "SpecValid"
    INVALID_SPEC = "InvalidSpec"
    BACKEND_REACHABLE = "BackendReachable"
    ACCEPTED = "Accepted"
    BACKEND_NOT_FOUND = "BackendNotFound"
    INVALID_BACKEND = "InvalidBackend"
    INSECURE_ADDRESS = "InsecureAddress"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_UNREADABLE = "SecretUnreadable"
    # a backend's answer (backends/base.py)
    BACKEND_ERROR = "BackendError"
    DENIED = "Denied"
    NOT_FOUND = "NotFound"
    INVALID_CONFIG = "InvalidConfig"
    BACKEND_UNAVAILABLE = "BackendUnavailable"


class EventReason(StrEnum):
    """Event reasons: alerting rules match on them."""

    ISSUED = "CredentialIssued"
    RENEWED = "LeaseRenewed"
    REISSUED = "CredentialReissued"
    REVOKED = "CredentialRevoked"
    RESTORED = "SecretRestored"
    REFRESHED = "CredentialRefreshed"
    ISSUE_FAILED = "IssueFailed"
    RENEW_FAILED = "RenewFailed"
    REVOKE_FAILED = "RevokeFailed"
    EXPIRED = "CredentialExpired"
    ENDED = "TaskEnded"
    SECRET_CONFLICT = "SecretConflict"
    RENEW_REQUESTED = "RenewRequested"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVED = "Approved"
    APPROVAL_IGNORED = "ApprovalIgnored"


class ApprovalReason(StrEnum):
    """``status.reason`` of an AgentTaskApproval: why it counts or not."""

    COUNTED = "Counted"
    TASK_NOT_FOUND = "TaskNotFound"
    TASK_REPLACED = "TaskReplaced"
    TASK_CHANGED = "TaskChanged"
    NO_APPROVER = "NoApprover"
    BACKEND_MISMATCH = "BackendMismatch"
    CREATOR_UNKNOWN = "CreatorUnknown"
    SELF_APPROVAL = "SelfApproval"
    NOT_REQUIRED = "NotRequired"
