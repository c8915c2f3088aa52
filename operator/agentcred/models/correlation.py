"""The correlation id a task's creator chose (annotation ``agentcred.io/correlation-id``).

The operator tags every action on a task (issue, renewal, re-issue, revocation) with a
correlation id that goes into its audit line and, where the backend takes one, into the
backend's request headers (Vault's ``X-Correlation-Id``, so Vault's audit log). A launcher
(``agentcred_client``) stamps one id per agent session on the task so that all of them,
and the agent's own logs, share it. It is tenant input on its way into audit logs and
HTTP headers: only a short id of letters, digits and ``. _ : -`` is taken (no spaces, no
line breaks, nothing a log parser or a header could mistake); anything else is ignored
and each action gets a fresh id as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agentcred.models.api_names import Annotation

MAX_LENGTH = 128
WELL_FORMED = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_LENGTH - 1}}}")


def well_formed(value: object) -> bool:
    return isinstance(value, str) and WELL_FORMED.fullmatch(value) is not None


def given(metadata: Mapping[str, Any]) -> str | None:
    """The creator's correlation id from a task's metadata, None when absent or malformed."""
    value = (metadata.get("annotations") or {}).get(Annotation.CORRELATION_ID)
    return value if well_formed(value) else None
