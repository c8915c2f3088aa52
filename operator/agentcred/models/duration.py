"""Go-style durations (``90s``, ``15m``, ``1h30m``), as written in the CRDs.

Kubernetes users know this format from every other controller; the CRD schema
checks the syntax, this module turns it into a ``timedelta`` for the operator.
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a positive Go duration; raise ``ValueError`` with the offending text."""
    if not _WHOLE.match(text):
        raise ValueError(f"{text!r} is not a Go duration such as 90s, 15m or 1h30m")
    seconds = sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} must be positive")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest Go duration for whole seconds (``1h30m``, ``45s``)."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds or not text else "")
