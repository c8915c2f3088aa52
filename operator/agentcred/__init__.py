"""agentcred: short-lived, task-scoped credentials for AI agents on Kubernetes."""

__version__ = "0.1.0"
