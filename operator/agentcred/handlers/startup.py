"""Operator start and stop: Kopf settings, the API login, and the shared clients."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from agentcred.settings import Settings

CONFIG: list[Settings] = []


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = CONFIG[-1] if CONFIG else Settings()
    memo["config"] = config
    # Progress and diff-base live in annotations: the status schemas are structural and
    # would prune Kopf's own status fields; Argo CD ignores annotations it did not set.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="agentcred.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="agentcred.io")
    settings.persistence.finalizer = config.finalizer
    settings.posting.level = logging.WARNING  # Events are posted explicitly, with stable reasons
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.batching.error_delays = (1, 2, 5, 10, 20, 40, 60)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the mounted ServiceAccount; elsewhere: the kubeconfig (KUBECONFIG)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
