"""agentcred: short-lived, task-scoped credentials for AI agents on Kubernetes."""

from agentcred import lazy_imports

lazy_imports.install()  # before Kopf or anything else imports kubernetes_asyncio

__version__ = "0.1.0"
