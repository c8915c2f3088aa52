"""Turn one stored secret value into credential fields, the same way for every static backend.

A static secret (GCP Secret Manager, Azure Key Vault) holds one opaque value. If that
value is a JSON object, each of its fields becomes one key of the generated Secret
(string values as they are, any other JSON value as JSON text), so a secret
``{"username": "u", "password": "p"}`` yields ``username`` and ``password``. Anything
else (plain text, a JSON string, number or array) is served whole under one key,
``value`` by default. Bytes that are not UTF-8 are served under that key as base64 text
(standard alphabet, padded): Secret fields are text, and base64 is the lossless way to
carry bytes in text; the consumer decodes it.

Nothing here ever puts the value in an exception message.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from agentcred.backends.base import BackendInvalidConfig

DEFAULT_KEY = "value"


def fields_from_bytes(data: bytes, source: str, key: str = DEFAULT_KEY) -> dict[str, str]:
    """Fields of a binary payload: UTF-8 text as :func:`fields_from_text`, else base64."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {key: base64.b64encode(data).decode("ascii")}
    return fields_from_text(text, source, key)


def fields_from_text(text: str, source: str, key: str = DEFAULT_KEY) -> dict[str, str]:
    """A JSON object's fields, or ``{key: text}``; ``source`` names the secret in errors."""
    parsed = _json_object(text)
    if parsed is None:
        return {key: text}
    if not parsed:
        raise BackendInvalidConfig(
            f"{source} holds an empty JSON object: there is no field to serve"
        )
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None  # cheap: only an object can become several keys
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None  # not JSON after all: plain text that starts with "{"
    return parsed if isinstance(parsed, dict) else None
