"""Printing what a command found: a table or key-value view for people (the default),
JSON or YAML for scripts (``-o json|yaml``). Pure: text in, text out.

Only what commands hand in is printed, and no command hands in a Secret's data: a lease
id, a Secret's name and times are all the plugin ever shows of a credential.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

FORMATS = ("table", "json", "yaml")
NONE = "-"


def dump(data: Any, fmt: str) -> str:
    """``data`` as JSON or YAML."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> str:
    """Columns padded to their widest cell, as kubectl prints them."""
    cells = [[str(h) for h in headers], *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "".join(f"{indent}{line}\n" for line in lines)


def cell(value: Any) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def relative(text: Any, now: datetime.datetime) -> str:
    """``2026-12-03T10:00:00Z`` as ``5m ago`` / ``in 2h10m`` (``-`` when unset)."""
    moment = parse_time(text)
    if moment is None:
        return NONE
    seconds = (moment - now).total_seconds()
    span = duration(abs(seconds))
    return f"in {span}" if seconds > 0 else f"{span} ago"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s" if seconds and minutes < 10 else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """``Key:   value`` lines, the keys padded to the longest."""
    width = max((len(k) for k, _ in pairs), default=0) + 1
    return "".join(f"{(k + ':').ljust(width)}  {cell(v)}\n" for k, v in pairs)


def pick(data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: data[k] for k in keys if k in data and data[k] not in (None, "")}
