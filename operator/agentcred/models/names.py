"""Names and label values derived from user-chosen names, always valid for Kubernetes.

A task name may be a 253-character DNS subdomain; ``<task>-<credential>`` can then be
too long for a Secret name, and a name cut at 63 characters can end in ``-`` or ``.``,
which no label value may. Both are shortened deterministically with a hash of the
full name, so the same task always yields the same names and two long names that share
a prefix never collide.
"""

from __future__ import annotations

import hashlib

MAX_NAME = 253  # DNS subdomain (Secret names)
MAX_LABEL = 63  # label values
HASH = 8


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH]


def secret_name(task: str, credential: str) -> str:
    """``<task>-<credential>``, or ``<task prefix>-<hash>-<credential>`` when too long."""
    name = f"{task}-{credential}"
    if len(name) <= MAX_NAME:
        return name
    keep = MAX_NAME - len(credential) - HASH - 2
    return f"{task[:keep].rstrip('-.')}-{short_hash(task)}-{credential}"


def label_value(value: str) -> str:
    """``value`` if it is a valid label value's length, else a prefix plus its hash."""
    if len(value) <= MAX_LABEL:
        return value
    return f"{value[: MAX_LABEL - HASH - 1].rstrip('-._')}-{short_hash(value)}"
