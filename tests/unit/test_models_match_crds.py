"""The typed models and the CRD schemas describe the same fields, and the CRDs carry no defaults."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentcred.models.backend import CredentialBackendSpec
from agentcred.models.credential import AgentCredentialSpec
from agentcred.models.parse import json_fields
from agentcred.models.quarantine import CredentialQuarantineSpec
from agentcred.models.status import (
    Condition,
    CredentialEntry,
    CredentialResourceStatus,
    CredentialStatus,
    TaskStatus,
)
from agentcred.models.task import AgentTaskSpec

CRDS = Path(__file__).resolve().parents[2] / "crds"


def schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"{plural}.yaml").read_text())
    result: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def _dataclass_of(hint: Any) -> type | None:
    for candidate in (hint, *typing.get_args(hint)):
        for inner in (candidate, *typing.get_args(candidate)):
            if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                return inner
    return None


def mismatches(model: type, node: dict[str, Any], path: str) -> list[str]:
    """Field-name differences between a dataclass tree and a schema tree."""
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return []
    props = node.get("properties", {})
    if node.get("type") == "array":
        props = node["items"].get("properties", {})
    fields = json_fields(model)
    problems = [f"{path}.{n}: in the model, not in the CRD" for n in fields.keys() - props.keys()]
    problems += [f"{path}.{n}: in the CRD, not in the model" for n in props.keys() - fields.keys()]
    hints = typing.get_type_hints(model)
    for name, field in fields.items():
        inner = _dataclass_of(hints[field.name])
        if inner is not None and name in props:
            problems += mismatches(inner, props[name], f"{path}.{name}")
    return problems


@pytest.mark.parametrize(
    ("plural", "model"),
    [
        ("agentcredentials", AgentCredentialSpec),
        ("agenttasks", AgentTaskSpec),
        ("credentialbackends", CredentialBackendSpec),
        ("credentialquarantines", CredentialQuarantineSpec),
    ],
)
def test_spec_models_and_crd_schemas_name_the_same_fields(plural: str, model: type) -> None:
    assert mismatches(model, schema(plural)["properties"]["spec"], "spec") == []


@pytest.mark.parametrize(
    ("plural", "status", "item"),
    [
        ("agentcredentials", CredentialResourceStatus, None),
        ("agenttasks", TaskStatus, CredentialStatus),
    ],
)
def test_status_types_and_crd_schemas_name_the_same_fields(
    plural: str, status: type, item: type | None
) -> None:
    props = schema(plural)["properties"]["status"]["properties"]
    assert set(props) == set(typing.get_type_hints(status))
    assert set(props["conditions"]["items"]["properties"]) == set(typing.get_type_hints(Condition))
    if item is not None:
        assert set(props["credentials"]["items"]["properties"]) == set(typing.get_type_hints(item))


def test_the_parsed_credential_entry_names_the_crd_fields() -> None:
    item = schema("agenttasks")["properties"]["status"]["properties"]["credentials"]["items"]
    assert set(json_fields(CredentialEntry)) == set(item["properties"])


def _walk(node: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "default":
                found.append(f"{path}.default")
            found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _walk(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize(
    "plural", ["agentcredentials", "agenttasks", "credentialbackends", "credentialquarantines"]
)
def test_crd_schemas_have_no_server_side_defaults(plural: str) -> None:
    assert _walk(schema(plural)) == []


@pytest.mark.parametrize(
    "plural", ["agentcredentials", "agenttasks", "credentialbackends", "credentialquarantines"]
)
def test_every_schema_property_has_a_description_or_is_self_explanatory(plural: str) -> None:
    spec = schema(plural)["properties"]["spec"]
    undocumented = [name for name, prop in spec["properties"].items() if "description" not in prop]
    assert undocumented == []
