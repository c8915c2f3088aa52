"""Render an AgentCredential's ``template`` keys from the issued credential's fields.

Deliberately tiny: ``{{ field }}`` placeholders and nothing else, so a template can
never run code or reach beyond the credential it belongs to. Errors name the key and
the unknown field and list the fields that exist, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_BRACES = re.compile(r"\{\{|\}\}")


class TemplateError(ValueError):
    """A template that cannot be rendered; the message is safe to show."""


def fields_used(template: Mapping[str, str]) -> dict[str, list[str]]:
    """Which credential fields each template key refers to; checks the syntax."""
    used: dict[str, list[str]] = {}
    for key, text in template.items():
        leftover = PLACEHOLDER.sub("", text)
        if _BRACES.search(leftover):
            raise TemplateError(
                f"template key {key!r}: malformed placeholder (use {{{{ field }}}})"
            )
        used[key] = PLACEHOLDER.findall(text)
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
    return {
        key: PLACEHOLDER.sub(lambda m: fields[m.group(1)], text) for key, text in template.items()
    }
