"""A CredentialBackend's Ready condition in-process: the platform team sees on the object
they wrote what keeps it from being usable (a spec that does not parse, a plain http://
address, an allow-list pattern that could hand one tenant's value to another, the
appRole Secret missing from or unreadable in the operator's namespace), and Accepted
once nothing does; conditions written by others are kept."""

from __future__ import annotations

from typing import Any

from agentcred.models.api_names import ConditionType, Reason
from agentcred.services import backend_status
from support.harness import Harness, play
from support.harness.objects import OPERATOR_NAMESPACE, credential_backend

APP_ROLE = {
    "address": "https://vault.harness:8200",
    "auth": {"appRole": {"roleId": "agentcred", "secretIdRef": {"name": "approle", "key": "id"}}},
    "allowedPaths": ["database/creds/{namespace}_*"],
}
APPROLE_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "approle", "namespace": OPERATOR_NAMESPACE},
    "data": {"id": "czNjcjN0"},
}


async def ready(h: Harness, vault: dict[str, Any], old: dict[str, Any] | None = None) -> Any:
    spec = credential_backend(vault=vault)["spec"]
    status = await backend_status.evaluate(h.deps, "backend", spec, 4, old or {})
    assert status["observedGeneration"] == 4
    found = {c["type"]: c for c in status["conditions"]}
    return found, found[ConditionType.READY]


def test_a_usable_backend_is_accepted_and_keeps_other_conditions() -> None:
    async def scenario(h: Harness) -> None:
        other = {"type": "Audited", "status": "True", "reason": "Seen", "message": ""}
        found, ok = await ready(h, APP_ROLE, {"conditions": [other]})
        assert (ok["status"], ok["reason"]) == ("True", Reason.ACCEPTED)
        assert found["Audited"]["reason"] == "Seen"

    play(Harness([APPROLE_SECRET]), scenario)


def test_a_missing_approle_secret_names_the_operator_namespace() -> None:
    async def scenario(h: Harness) -> None:
        _, not_ok = await ready(h, APP_ROLE)
        assert (not_ok["status"], not_ok["reason"]) == ("False", Reason.SECRET_NOT_FOUND)
        assert f"operator-side Secrets live in {OPERATOR_NAMESPACE}" in not_ok["message"]

    play(Harness(), scenario)


def test_an_unreadable_approle_secret_is_secret_unreadable() -> None:
    async def scenario(h: Harness) -> None:
        h.server.fail("get", "secrets", 403, name="approle")
        _, not_ok = await ready(h, APP_ROLE)
        assert (not_ok["status"], not_ok["reason"]) == ("False", Reason.SECRET_UNREADABLE)

    play(Harness([APPROLE_SECRET]), scenario)


def test_a_plain_http_address_is_an_insecure_address_before_any_secret_read() -> None:
    async def scenario(h: Harness) -> None:
        h.take()
        _, not_ok = await ready(h, {**APP_ROLE, "address": "http://vault.harness:8200"})
        assert (not_ok["status"], not_ok["reason"]) == ("False", Reason.INSECURE_ADDRESS)
        assert "spec.vault.address" in not_ok["message"]
        assert h.take() == []  # the Secret is not even read

    play(Harness([APPROLE_SECRET]), scenario)


def test_an_allow_list_that_could_cross_tenants_is_an_invalid_backend() -> None:
    async def scenario(h: Harness) -> None:
        _, not_ok = await ready(h, {**APP_ROLE, "allowedPaths": ["{namespace}-*"]})
        assert (not_ok["status"], not_ok["reason"]) == ("False", Reason.INVALID_BACKEND)
        assert "'{namespace}-*'" in not_ok["message"] and "backend" in not_ok["message"]

    play(Harness([APPROLE_SECRET]), scenario)


def test_a_spec_that_does_not_parse_is_invalid_spec() -> None:
    async def scenario(h: Harness) -> None:
        broken = {k: v for k, v in APP_ROLE.items() if k != "address"}
        _, not_ok = await ready(h, broken)
        assert (not_ok["status"], not_ok["reason"]) == ("False", Reason.INVALID_SPEC)
        assert "address" in not_ok["message"]

    play(Harness([APPROLE_SECRET]), scenario)
