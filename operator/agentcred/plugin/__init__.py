"""``kubectl agentcred``: the humans' view of agentcred, a kubectl plugin.

It is not the operator: it runs as the person who types it, with their kubeconfig and
their RBAC, and imports nothing of the operator's runtime (handlers, services, backends,
kube): only the wire names and status models of ``agentcred.models``. Its one module that
talks to the API is ``plugin/api.py`` (import-linter contracts in pyproject.toml).
One module per command group, registered in ``plugin/main.py``.
"""
