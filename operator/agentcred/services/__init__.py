"""Orchestration between the handlers and the backends / Kubernetes layer."""
