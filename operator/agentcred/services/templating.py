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
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\|\s*([A-Za-z0-9_]+)\s*)?\}\}")
_BRACES = re.compile(r"\{\{|\}\}")
FILTERS: dict[str, Callable[[str], str]] = {
    "urlquery": lambda value: quote(value, safe=""),
    "base64": lambda value: base64.b64encode(value.encode()).decode(),
}


class TemplateError(ValueError):
    """A template that cannot be rendered; the message is safe to show."""


def fields_used(template: Mapping[str, str]) -> dict[str, list[str]]:
    """Which credential fields each template key refers to; checks the syntax and filters."""
    used: dict[str, list[str]] = {}
    for key, text in template.items():
        leftover = PLACEHOLDER.sub("", text)
        if _BRACES.search(leftover):
            raise TemplateError(
                f"template key {key!r}: malformed placeholder (use {{{{ field }}}} or "
                f"{{{{ field | filter }}}})"
            )
        for _, name in PLACEHOLDER.findall(text):
            if name and name not in FILTERS:
                raise TemplateError(
                    f"template key {key!r}: unknown filter {name!r} "
                    f"(known: {', '.join(sorted(FILTERS))})"
                )
        used[key] = [field for field, _ in PLACEHOLDER.findall(text)]
    return used


def render(template: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    """The rendered extra keys; raise TemplateError naming any unknown field."""
    for key, names in fields_used(template).items():
        unknown = sorted(set(names) - set(fields))
        if unknown:
            raise TemplateError(
                f"template key {key!r} uses unknown field(s) {', '.join(unknown)}; "
                f"the credential has: {', '.join(sorted(fields)) or 'no fields'}"
            )

    def one(match: re.Match[str]) -> str:
        value = fields[match.group(1)]
        return FILTERS[match.group(2)](value) if match.group(2) else value

    return {key: PLACEHOLDER.sub(one, text) for key, text in template.items()}
