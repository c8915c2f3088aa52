"""What the fake API server does with a PATCH body and a label selector (pure functions).

The operator's kube layer sends JSON merge patches (RFC 7386) and, through the client
library's defaults, may send JSON patches (RFC 6902) or strategic merge patches; the
fake server applies each as the API server would for the object types the operator
touches (no type here has a patchMergeKey, so a strategic merge is a merge). Label
selectors follow Kubernetes' string syntax: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``,
``a in (x,y)``, ``a notin (x,y)``, joined by commas.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class PatchError(ValueError):
    """A patch the server rejects (422); ``test`` failures included."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy and test, applied in order."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        doc = _operation(doc, op)
    return doc


def _operation(doc: Any, op: Mapping[str, Any]) -> Any:
    kind, path = op.get("op"), _pointer(str(op.get("path", "")))
    if kind == "test":
        if _get(doc, path) != op.get("value"):
            raise PatchError(f"test failed at {op.get('path')}")
        return doc
    if kind == "remove":
        return _remove(doc, path)
    if kind in ("add", "replace"):
        if kind == "replace":
            _get(doc, path)  # must exist
            doc = _remove(doc, path)
        return _add(doc, path, copy.deepcopy(op.get("value")))
    if kind in ("move", "copy"):
        source = _pointer(str(op.get("from", "")))
        value = copy.deepcopy(_get(doc, source))
        if kind == "move":
            doc = _remove(doc, source)
        return _add(doc, path, value)
    raise PatchError(f"unknown JSON patch operation {kind!r}")


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"bad JSON pointer {text!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in text[1:].split("/")]


def _get(doc: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(doc, list):
            doc = doc[_index(doc, part, adding=False)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise PatchError(f"path /{'/'.join(path)} does not exist")
    return doc


def _index(items: list[Any], part: str, *, adding: bool) -> int:
    if adding and part == "-":
        return len(items)
    if not part.isdigit() or int(part) > len(items) - (0 if adding else 1):
        raise PatchError(f"bad list index {part!r}")
    return int(part)


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, list):
        parent.insert(_index(parent, last, adding=True), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"cannot add under /{'/'.join(path[:-1])}")
    return doc


def _remove(doc: Any, path: list[str]) -> Any:
    if not path:
        return None
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, list):
        del parent[_index(parent, last, adding=False)]
    elif isinstance(parent, dict) and last in parent:
        del parent[last]
    else:
        raise PatchError(f"path /{'/'.join(path)} does not exist")
    return doc


_TERM = re.compile(
    r"\s*(?:(?P<not>!)\s*(?P<absent>[^,\s]+)"
    r"|(?P<key>[^,!=\s()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^,\s]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?)\s*(?:,|$)"
)


def selects(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector string selects an object with ``labels`` (empty: all)."""
    text = (selector or "").strip()
    position = 0
    while position < len(text):
        match = _TERM.match(text, position)
        if match is None or match.end() == position:
            raise PatchError(f"unparsable label selector {text!r}")
        if not _term_holds(match, labels):
            return False
        position = match.end()
    return True


def _term_holds(match: re.Match[str], labels: Mapping[str, str]) -> bool:
    if match.group("not"):
        return match.group("absent") not in labels
    key = match.group("key")
    if match.group("op"):
        equal = labels.get(key) == match.group("value")
        return equal if match.group("op") in ("=", "==") else not equal
    if match.group("set"):
        values = {v.strip() for v in match.group("values").split(",")}
        inside = key in labels and labels[key] in values
        return inside if match.group("set") == "in" else not inside
    return key in labels
