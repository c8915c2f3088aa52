"""The audit trail: one JSON line per issuance, renewal, re-issue, revocation and failure.

A dedicated logger (``agentcred.audit``) so it can be routed on its own. Records name
who (namespace, task, ServiceAccount), what (credential, backend, lease id) and the
outcome, plus a correlation id that is also sent to the backend where it takes one.
Never a credential value.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from dataclasses import asdict, dataclass

logger = logging.getLogger("agentcred.audit")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AuditRecord:
    action: str  # issue | renew | reissue | revoke | refresh | restore | fail | approve
    outcome: str  # success | failure | skipped | approved | denied | timed-out
    namespace: str
    task: str
    credential: str
    backend: str
    service_account: str
    lease_id: str
    correlation_id: str
    reason: str = ""
    timestamp: str = ""
    approver: str = ""  # who approved or denied (action approve); omitted when empty

    def to_json(self) -> str:
        record = asdict(self)
        if not record["approver"]:
            del record["approver"]
        record["timestamp"] = self.timestamp or datetime.datetime.now(datetime.UTC).isoformat()
        return json.dumps(record, sort_keys=True)


def emit(record: AuditRecord) -> None:
    logger.info(record.to_json())
