"""Render an AgentCredential's ``template`` keys from the issued credential's fields.

Deliberately tiny: ``{{ field }}`` placeholders, optionally piped through one of a few
encoding filters, and nothing else, so a template can never run code or reach beyond
the credential it belongs to. Errors name the key and the unknown field or filter and
list the fields that exist, never their values.

Filters (``{{ password | urlquery }}``):

* ``urlquery``: percent-encodes everything but RFC 3986's unreserved characters
  (``A-Z a-z 0-9 - . _ ~``), so a value is safe anywhere in a URL: user info, path or
  query. ``postgresql://{{ username | urlquery }}:{{ password | urlquery }}@db/app`` is
  a valid URL whatever the password holds (``@``, ``/``, ``:``, ``?``, ``#``...).
* ``base64``: standard base64 of the UTF-8 value.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\|\s*([A-Za-z0-9_]+)\s*)?\}\}")
_BRACES = re.compile(r"\{\{|\}\}")
FILTERS: dict[str, Callable[[str], str]] = {
    "urlquery": lambda value: quote(value, safe=""),
    "base64": lambda value: base64.b64encode(value.encode()).decode(),
}


class TemplateError(ValueError):
    """A template that cannot be rendered; the message is safe to show."""


@dataclass(frozen=True)
class Placeholder:
    field: str
    filter: str  # "" for none


Part = str | Placeholder


@dataclass(frozen=True)
class Template:
    """A template parsed once (``parse``): per key, its literal text and placeholders in
    order. Rendering joins them; nothing is parsed again per issuance."""

    keys: Mapping[str, tuple[Part, ...]]

    def fields_used(self) -> dict[str, list[str]]:
        """Which credential fields each key refers to."""
        return {
            key: [p.field for p in parts if isinstance(p, Placeholder)]
            for key, parts in self.keys.items()
        }

    def render(self, fields: Mapping[str, str]) -> dict[str, str]:
        """The rendered extra keys; raise TemplateError naming any unknown field."""
        for key, names in self.fields_used().items():
            unknown = sorted(set(names) - set(fields))
            if unknown:
                raise TemplateError(
                    f"template key {key!r} uses unknown field(s) {', '.join(unknown)}; "
                    f"the credential has: {', '.join(sorted(fields)) or 'no fields'}"
                )
        return {key: "".join(_value(p, fields) for p in parts) for key, parts in self.keys.items()}


def _value(part: Part, fields: Mapping[str, str]) -> str:
    if isinstance(part, str):
        return part
    value = fields[part.field]
    return FILTERS[part.filter](value) if part.filter else value


def parse(template: Mapping[str, str]) -> Template:
    """Parse every key once; raise TemplateError on a malformed placeholder or an unknown
    filter."""
    return Template({key: _parse_key(key, text) for key, text in template.items()})


def _parse_key(key: str, text: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    at = 0
    for match in PLACEHOLDER.finditer(text):
        parts += [text[at : match.start()], Placeholder(match.group(1), match.group(2) or "")]
        at = match.end()
    parts.append(text[at:])
    if _BRACES.search("".join(p for p in parts if isinstance(p, str))):  # what is left
        raise TemplateError(
            f"template key {key!r}: malformed placeholder (use {{{{ field }}}} or "
            f"{{{{ field | filter }}}})"
        )
    for p in parts:
        if isinstance(p, Placeholder) and p.filter and p.filter not in FILTERS:
            raise TemplateError(
                f"template key {key!r}: unknown filter {p.filter!r} "
                f"(known: {', '.join(sorted(FILTERS))})"
            )
    return tuple(p for p in parts if p != "")


def fields_used(template: Mapping[str, str]) -> dict[str, list[str]]:
    """Which credential fields each template key refers to; checks the syntax and filters."""
    return parse(template).fields_used()


def render(template: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    """Parse and render in one go (for one-off callers; issuance parses once, in
    ``issuance.resolve``, and renders the parsed ``Template``)."""
    return parse(template).render(fields)
