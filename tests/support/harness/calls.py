"""The operator's requests by name, as ``(verb, resource, subresource)``, so that a test's
expected call list reads as what the operator does."""

from __future__ import annotations

from agentcred.models.api_names import Plural

Short = tuple[str, str, str]

GET_TASK: Short = ("get", Plural.TASKS, "")
LIST_TASKS: Short = ("list", Plural.TASKS, "")
PATCH_STATUS: Short = ("patch", Plural.TASKS, "status")
GET_CREDENTIAL: Short = ("get", Plural.CREDENTIALS, "")
GET_BACKEND: Short = ("get", Plural.BACKENDS, "")
GET_NAMESPACE: Short = ("get", "namespaces", "")
GET_SECRET: Short = ("get", "secrets", "")
LIST_SECRETS: Short = ("list", "secrets", "")
CREATE_SECRET: Short = ("create", "secrets", "")
UPDATE_SECRET: Short = ("update", "secrets", "")
PATCH_SECRET: Short = ("patch", "secrets", "")
DELETE_SECRET: Short = ("delete", "secrets", "")
TOKEN: Short = ("create", "serviceaccounts", "token")
EVENT: Short = ("create", "events", "")
LIST_PODS: Short = ("list", "pods", "")
GET_POD: Short = ("get", "pods", "")

# Sequences the core repeats
# What resolve reads (AgentCredential, CredentialBackend, namespace labels) comes from the
# watch-fed cache (services/lookups.py): no request; a miss is one GET of what was missing
RESOLVE: list[Short] = []
EVENT_AGAIN = [EVENT, ("get", "events", ""), ("patch", "events", "")]  # 409, then counted
REPLACE_SECRET = [CREATE_SECRET, GET_SECRET, UPDATE_SECRET]  # 409, read, replace
DELETE_OURS = [GET_SECRET, DELETE_SECRET]  # checked ours, then deleted with preconditions
