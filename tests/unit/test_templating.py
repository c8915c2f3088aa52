"""Template keys rendered from credential fields; errors name fields, never values."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from agentcred.services.templating import TemplateError, fields_used, render

FIELDS = {"username": "v-agent-x1", "password": "s3cr3t-P4ss"}


def test_placeholders_are_replaced_with_field_values() -> None:
    out = render({"URL": "postgresql://{{ username }}:{{password}}@db/app"}, FIELDS)
    assert out == {"URL": "postgresql://v-agent-x1:s3cr3t-P4ss@db/app"}


def test_unknown_field_names_the_key_and_lists_fields_without_values() -> None:
    with pytest.raises(TemplateError) as info:
        render({"URL": "{{ user }}:{{ password }}"}, FIELDS)
    message = str(info.value)
    assert "'URL'" in message and "user" in message and "username" in message
    assert "s3cr3t-P4ss" not in message and "v-agent-x1" not in message


@pytest.mark.parametrize("text", ["{{ username", "{{ user name }}", "}} x", "{{}}"])
def test_malformed_placeholders_are_refused(text: str) -> None:
    with pytest.raises(TemplateError, match="malformed"):
        fields_used({"K": text})


def test_fields_used_lists_references_per_key() -> None:
    assert fields_used({"A": "{{ username }}", "B": "static"}) == {"A": ["username"], "B": []}


def test_template_text_is_not_evaluated() -> None:
    with pytest.raises(TemplateError, match="malformed"):
        render({"K": "{{ username.__class__ }} {{ 7*7 }}"}, FIELDS)


def test_urlquery_makes_any_password_safe_in_a_url() -> None:
    fields = {"username": "v-agent", "password": "p@ss/w:rd?#%& x"}
    out = render(
        {"URL": "postgresql://{{ username | urlquery }}:{{ password|urlquery }}@db:5432/app"},
        fields,
    )
    url = urlsplit(out["URL"])
    assert (url.hostname, url.port, url.path) == ("db", 5432, "/app")
    assert unquote(url.password or "") == fields["password"]


def test_base64_filter_and_unknown_filters() -> None:
    assert render({"B": "{{ username | base64 }}"}, FIELDS) == {"B": "di1hZ2VudC14MQ=="}
    with pytest.raises(TemplateError, match="unknown filter 'shell'"):
        fields_used({"K": "{{ password | shell }}"})
