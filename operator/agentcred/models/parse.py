"""Build frozen dataclasses from Kubernetes JSON, field by field, with field paths in errors.

Model fields are snake_case; their JSON names are the camelCase of the same words
(``secret_id_ref`` <-> ``secretIdRef``), so a model and its CRD schema can be
compared mechanically (tests/unit/test_models_match_crds.py does).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

from agentcred.models.duration import parse_duration
from agentcred.models.errors import SpecError

T = TypeVar("T")


ACRONYMS = {"http": "HTTP", "ttl": "TTL"}  # written in capitals after the first word


def json_name(field_name: str) -> str:
    head, *rest = field_name.split("_")
    return head + "".join(ACRONYMS.get(word, word.capitalize()) for word in rest)


# Per model class, computed once: resolving string annotations is slow (it was 7-14 % of
# a burst's CPU when done on every parse).
_FIELDS: dict[type[Any], dict[str, dataclasses.Field[Any]]] = {}
_HINTS: dict[type[Any], dict[str, Any]] = {}


def json_fields(cls: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = {json_name(f.name): f for f in dataclasses.fields(cls)}
    return found


def _hints(cls: type[Any]) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = typing.get_type_hints(cls)
    return found


def build(cls: type[T], data: Any, path: str) -> T:
    """Parse ``data`` (a JSON object) into dataclass ``cls``; unknown keys are ignored."""
    if not isinstance(data, Mapping):
        raise SpecError(path, f"must be an object, not {type(data).__name__}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, field in json_fields(cls).items():
        if name not in data or data[name] is None:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise SpecError(f"{path}.{name}", "is required")
            continue
        kwargs[field.name] = _convert(hints[field.name], data[name], f"{path}.{name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value, path)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, path)
    if hint is timedelta:
        try:
            return parse_duration(_expect(str, value, path))
        except ValueError as exc:
            raise SpecError(path, str(exc)) from None
    if origin is tuple:
        item = typing.get_args(hint)[0]
        items = _expect(list, value, path)
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(items))
    if origin in (Mapping, dict) or hint is Mapping:
        return dict(_expect(dict, value, path))
    if hint is bool:
        return _expect(bool, value, path)
    if hint is int:
        if isinstance(value, bool):
            raise SpecError(path, "must be an integer")
        return _expect(int, value, path)
    if hint is str:
        return _expect(str, value, path)
    return value


def _expect(kind: type[T], value: Any, path: str) -> T:
    if not isinstance(value, kind):
        raise SpecError(path, f"must be {kind.__name__}, not {type(value).__name__}")
    return value


def to_json(obj: Any) -> Any:
    """The inverse of :func:`build`: a dataclass as JSON, unset (None) fields left out."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            json_name(f.name): to_json(value)
            for f in dataclasses.fields(obj)
            if (value := getattr(obj, f.name)) is not None
        }
    if isinstance(obj, timedelta):
        seconds = obj.total_seconds()
        return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:.6f}s"
    if isinstance(obj, tuple | list):
        return [to_json(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    return obj
