"""One status write per decision, and no step left over once a task ended
(services/lifecycle.py ``end``)."""

from __future__ import annotations

from agentcred.models.api_names import Reason
from support.harness import Harness, play
from support.harness.backends import failing_permanently
from support.harness.calls import PATCH_STATUS
from support.harness.objects import agent_task, world


def test_a_new_task_that_fails_for_good_is_written_once_failed_with_its_start() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.take().count(PATCH_STATUS) == 1  # not Pending, then Failed
        status = h.status()
        assert (status["phase"], status["reason"]) == ("Failed", Reason.DENIED)
        assert status["startTime"] and status["completionTime"]
        assert status["observedGeneration"] == 1
        assert h.next_due() is None  # nothing to look at later

    play(Harness(world(), {"vault": failing_permanently()}), scenario)


def test_a_completed_task_leaves_the_schedule() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.next_due() is not None  # its renewal
        await h.complete()
        assert h.status()["phase"] == "Succeeded"
        assert h.next_due() is None  # no step to read it and find nothing left

    play(Harness(world()), scenario)


def test_a_task_past_its_deadline_ends_in_its_step_and_leaves_the_schedule() -> None:
    async def scenario(h: Harness) -> None:
        await h.start()
        await h.advance(300)  # the deadline (activeDeadlineSeconds)
        assert h.status()["phase"] == "Expired"
        assert h.next_due() is None

    play(Harness(world(task=agent_task(deadline=300))), scenario)
