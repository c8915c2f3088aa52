"""Reading Vault's JSON answers, and the small time arithmetic the readers share.

Pure functions: they see a response hvac already returned and never call Vault.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from typing import Any

from agentcred.backends.base import BackendInvalidConfig


def body(response: Any, action: str) -> dict[str, Any]:
    """hvac's JSON adapter returns a dict for a 200 with JSON, the raw response otherwise."""
    if isinstance(response, dict):
        return response
    if getattr(response, "status_code", None) == 204:
        return {}
    status = getattr(response, "status_code", "?")
    raise BackendInvalidConfig(f"Vault answered {action} with HTTP {status} and no JSON body")


def fields(data: Any, action: str) -> dict[str, str]:
    """Credential fields as strings; other JSON values are kept as JSON text."""
    if not isinstance(data, Mapping) or not data:
        raise BackendInvalidConfig(f"Vault's answer to {action} holds no data fields")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def seconds(ttl: datetime.timedelta) -> int:
    return max(1, math.ceil(ttl.total_seconds()))


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def after(start: datetime.datetime, secs: int) -> datetime.datetime | None:
    return start + datetime.timedelta(seconds=secs) if secs > 0 else None


def earliest(*times: datetime.datetime | None) -> datetime.datetime | None:
    return min((t for t in times if t is not None), default=None)
