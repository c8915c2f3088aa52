"""A renewed lease is renewed again at its next due time, on the same lease, for as long as
the task runs (the loop the end-to-end renewal test used to wait two real renewals for;
tests/e2e/lifecycle/test_renewal.py keeps one renewal against the real Vault)."""

from __future__ import annotations

from support.harness import Harness, play
from support.harness.objects import world


def test_each_renewal_schedules_the_next_on_the_same_lease() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        lease = h.entry()["leaseId"]
        h.backends["vault"].take()
        expiries = [h.entry()["expiresAt"]]
        for count in (1, 2, 3):
            due = h.next_due()
            assert due is not None and due > 0, "a renewal is scheduled after each one"
            await h.advance(due)
            entry = h.entry()
            assert (entry["leaseId"], entry["renewals"]) == (lease, count)
            assert entry["expiresAt"] > expiries[-1]
            expiries.append(entry["expiresAt"])
        calls = h.backends["vault"].take()
        assert [c[0] for c in calls] == ["renew"] * 3
        assert h.entry().get("reissues", 0) == 0 and h.status()["phase"] == "Active"

    play(Harness(world()), scenario)
