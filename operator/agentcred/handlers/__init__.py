"""Kopf handlers: parse, delegate to services, map errors. Importing registers them."""

from __future__ import annotations

from agentcred.handlers import backends, credentials, startup, tasks
from agentcred.settings import Settings


def install(config: Settings) -> None:
    """Hand the settings to the startup handler (Kopf passes them on through memo)."""
    startup.CONFIG.append(config)


__all__ = ["backends", "credentials", "install", "tasks"]
