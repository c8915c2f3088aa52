"""Status tells the truth: rows noticed in earlier work, each a harness test."""

from __future__ import annotations

from pathlib import Path

import yaml

from agentcred.backends.base import BackendUnavailable
from agentcred.models.api_names import Reason
from agentcred.models.status import EntryState
from support.harness import Harness, play
from support.harness.calls import PATCH_STATUS
from support.harness.objects import world

CRDS = Path(__file__).resolve().parents[3] / "crds"


def test_ready_is_true_again_once_a_renewal_succeeds_after_one_failed() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.backends["vault"].fail("renew", BackendUnavailable("connection refused"))
        await h.advance(h.next_due() or 0)
        assert h.ready() == ("False", Reason.RENEW_FAILED)
        await h.advance(h.next_due() or 0)  # retried within seconds, and renewed
        assert h.entry()["renewals"] == 1
        assert h.ready() == ("True", Reason.CREDENTIALS_ISSUED)

    play(Harness(world()), scenario)


def test_a_failed_renewal_is_one_status_write() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        h.take()
        h.backends["vault"].fail("renew", BackendUnavailable("connection refused"))
        await h.advance(h.next_due() or 0)
        calls = h.take()
        assert calls.count(PATCH_STATUS) == 1, calls  # the postponed entry and Ready together

    play(Harness(world()), scenario)


def test_observed_generation_follows_every_status_write() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.status()["observedGeneration"] == 1
        await h.complete()  # spec.completed: generation 2
        task = h.body()
        assert task["metadata"]["generation"] == 2
        assert task["status"]["phase"] == "Succeeded"
        assert task["status"]["observedGeneration"] == 2

    play(Harness(world()), scenario)


def test_the_crd_describes_every_entry_state_the_operator_writes() -> None:
    crd = yaml.safe_load((CRDS / "agenttasks.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    entry = schema["properties"]["status"]["properties"]["credentials"]["items"]
    described = entry["properties"]["state"]["description"]
    words = set(described.replace(",", " ").replace(".", " ").split())
    assert {s.value for s in EntryState} <= words, described
    assert "Failed" not in words, described  # never written to an entry


def test_a_credential_edited_from_dynamic_to_static_gives_up_its_session_at_once() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.record_keys() == ["db"]
        vault = h.backends["vault"]
        vault.take()
        h.server.edit(
            "agentcredentials",
            "team-a",
            "db",
            {"spec": {"vault": {"dynamic": None, "kv": {"path": "app"}}}},
        )
        h.deliver("agentcredentials", "db", "team-a")  # the watch sees the edit
        await h.advance(h.next_due() or 0)  # its next refresh reads the static secret
        assert h.secret_data("team-a", "t1-db") == {"value": "v1"}
        assert vault.take() == [("issue", "db"), ("revoke", "accessor-1")]
        assert h.record_keys() == []  # the old lease is revoked now, not at the task's end
        assert h.entry()["revocable"] is False

    play(Harness(world()), scenario)
