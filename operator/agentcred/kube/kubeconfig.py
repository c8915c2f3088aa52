"""What a command-line tool reads from the user's kubeconfig besides the connection:
the current context's namespace (``kubectl agentcred`` defaults to it, as kubectl does)."""

from __future__ import annotations

import os

from kubernetes_asyncio import config


def current_namespace() -> str:
    """The current context's namespace, else ``default``."""
    try:
        _, active = config.list_kube_config_contexts(
            config_file=os.environ.get("KUBECONFIG") or "~/.kube/config"
        )
    except Exception:  # no usable kubeconfig: the API client says so when it connects
        return "default"
    return str(((active or {}).get("context") or {}).get("namespace") or "default")
