"""An AgentCredential's status in-process: what keeps it from working lands on its Ready
condition with a reason a person can act on (a spec that does not parse, a template
that cannot render, the operator-side Secret missing or unreadable), and the periodic
re-check isolates each credential: one that cannot be written to never stops the others,
and a failed or crashed round never ends the loop."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agentcred.models.api_names import ConditionType, Plural, Reason
from agentcred.services import credential_recheck, credential_status
from support.harness import Harness, play
from support.harness.objects import (
    OPERATOR_NAMESPACE,
    agent_credential,
    credential_backend,
    namespace,
    service_account,
)

TOKEN_AUTH = {
    "address": "https://vault.harness:8200",
    "auth": {"token": {"secretRef": {"name": "vault-token", "key": "token"}}},
    "allowedPaths": ["database/creds/*"],
}
NO_ROLE = {"dynamic": {"path": "database/creds/app"}}


def conditions(body: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c.get("message", ""))
        for c in body.get("conditions") or []
    }


async def evaluate(h: Harness, name: str = "db") -> dict[str, Any]:
    body = h.server.read(Plural.CREDENTIALS, "team-a", name)
    assert body is not None
    status = await credential_status.evaluate(
        h.deps, "team-a", name, body["spec"], 3, body.get("status") or {}
    )
    return dict(status)


def token_world() -> list[dict[str, Any]]:
    return [
        namespace(),
        service_account(),
        credential_backend(vault=TOKEN_AUTH),
        agent_credential(vault=NO_ROLE),
    ]


def test_a_spec_that_does_not_parse_is_not_valid_and_not_ready() -> None:
    async def scenario(h: Harness) -> None:
        status = await evaluate(h)
        found = conditions(status)
        assert found[ConditionType.SPEC_VALID][:2] == ("False", Reason.INVALID_SPEC)
        assert found[ConditionType.READY][:2] == ("False", Reason.INVALID_SPEC)
        assert found[ConditionType.READY][2] == found[ConditionType.SPEC_VALID][2] != ""
        assert status["backend"] == "" and status["observedGeneration"] == 3
        assert h.backends["vault"].take() == []  # nothing asked of a backend

    bad = agent_credential()
    bad["spec"]["ttl"] = "forever"
    play(Harness([namespace(), service_account(), credential_backend(), bad]), scenario)


def test_a_template_that_cannot_render_is_a_template_error_before_any_backend_call() -> None:
    async def scenario(h: Harness) -> None:
        found = conditions(await evaluate(h))
        assert found[ConditionType.SPEC_VALID][:2] == ("True", Reason.SPEC_VALID)
        status, reason, message = found[ConditionType.READY]
        assert (status, reason) == ("False", Reason.TEMPLATE_ERROR)
        assert "unknown filter 'shell'" in message
        assert h.backends["vault"].take() == []

    bad = agent_credential(template={"DSN": "{{ password | shell }}"})
    play(Harness([namespace(), service_account(), credential_backend(), bad]), scenario)


def test_a_missing_operator_side_token_secret_is_named_on_ready() -> None:
    async def scenario(h: Harness) -> None:
        status, reason, message = conditions(await evaluate(h))[ConditionType.READY]
        assert (status, reason) == ("False", Reason.SECRET_NOT_FOUND)
        assert "vault-token" in message
        assert h.backends["vault"].take() == []  # no check before the Secret is there

    play(Harness(token_world()), scenario)


def test_an_unreadable_token_secret_is_secret_unreadable_then_ready_once_readable() -> None:
    async def scenario(h: Harness) -> None:
        h.server.fail("get", "secrets", 403, name="vault-token")
        status, reason, _ = conditions(await evaluate(h))[ConditionType.READY]
        assert (status, reason) == ("False", Reason.SECRET_UNREADABLE)
        status, reason, message = conditions(await evaluate(h))[ConditionType.READY]
        assert (status, reason) == ("True", Reason.BACKEND_REACHABLE)
        assert message == "vault backend reachable"
        assert [op for op, _ in h.backends["vault"].take()] == ["check"]

    token = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "vault-token", "namespace": OPERATOR_NAMESPACE},
        "data": {"token": "czNjcjN0"},
    }
    play(Harness([*token_world(), token]), scenario)


def two_credentials() -> list[dict[str, Any]]:
    return [
        namespace(),
        service_account(),
        credential_backend(),
        agent_credential("db"),
        agent_credential("other"),
    ]


def test_one_credential_whose_status_cannot_be_written_never_stops_the_others() -> None:
    async def scenario(h: Harness) -> None:
        h.server.fail("patch", Plural.CREDENTIALS, 500, subresource="status", name="db")
        assert await credential_recheck.recheck_all(h.deps) == 1
        other = h.server.read(Plural.CREDENTIALS, "team-a", "other") or {}
        ready = conditions(other.get("status") or {})[ConditionType.READY]
        assert ready[:2] == ("True", Reason.BACKEND_REACHABLE)
        db = h.server.read(Plural.CREDENTIALS, "team-a", "db") or {}
        assert "status" not in db or not db["status"].get("conditions")
        # The next round writes it.
        assert await credential_recheck.recheck_all(h.deps) == 2
        db = h.server.read(Plural.CREDENTIALS, "team-a", "db") or {}
        assert conditions(db["status"])[ConditionType.READY][0] == "True"

    play(Harness(two_credentials()), scenario)


def test_a_failed_or_crashed_round_never_ends_the_recheck_loop(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[str] = []

    async def scenario(h: Harness) -> None:
        real = credential_recheck.recheck_all

        async def flaky(deps: Any, backend: str | None = None) -> int:
            rounds.append("round")
            if len(rounds) == 2:
                raise RuntimeError("bug in a check")
            return await real(deps, backend)

        monkeypatch.setattr(credential_recheck, "recheck_all", flaky)
        h.server.fail("list", Plural.CREDENTIALS, 500)  # the first round's LIST
        waits: list[float] = []

        async def stopped(seconds: float) -> bool:
            waits.append(seconds)
            return len(waits) > 3

        with caplog.at_level(logging.WARNING, logger="agentcred.credentials"):
            await credential_recheck.run_forever(h.deps, stopped)
        assert waits == [credential_recheck.INTERVAL_SECONDS] * 4
        assert len(rounds) == 3
        messages = [r.getMessage() for r in caplog.records]
        assert any("retrying next interval" in m and "failed" in m for m in messages)
        assert any("crashed, retrying next interval" in m for m in messages)
        # The third round ran through: both credentials are Ready.
        for name in ("db", "other"):
            body = h.server.read(Plural.CREDENTIALS, "team-a", name) or {}
            assert conditions(body["status"])[ConditionType.READY][0] == "True"

    play(Harness(two_credentials()), scenario)
