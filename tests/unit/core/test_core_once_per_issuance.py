"""One issuance parses the credential's template once and asks the backend's capabilities
once (``issuance.bind``, in ``resolve``), however many steps need them after (the
ceiling check, the render before anything is written, the Secret's data, the status
entry, when to act next). Before issue 19: 3 parses and 5 capability calls per issue.

Counted where every caller passes: the template's placeholder pattern (each template
has one key: one use is one parse) and the registry's wrapper around each backend (the
fakes' own calls to themselves do not count)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from agentcred.backends import instrumented
from agentcred.services import templating
from support.harness import Harness, play
from support.harness.objects import (
    agent_credential,
    agent_task,
    credential_backend,
    namespace,
    service_account,
)
from support.harness.store import Body

TEMPLATE = {"URL": "postgresql://{{ username | urlquery }}:{{ password | urlquery }}@db/app"}
STATIC_TEMPLATE = {"CONFIG": "value={{ value | base64 }}"}


class CountingPattern:
    """The template's placeholder pattern, counting every use: parsing one key is one use
    (rendering a parsed template uses none), so the count is the number of parses."""

    def __init__(self, pattern: re.Pattern[str], counts: Counter[str]) -> None:
        self._pattern, self._counts = pattern, counts

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._pattern, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counts["parse"] += 1
            return found(*args, **kwargs)

        return counted


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()
    monkeypatch.setattr(templating, "PLACEHOLDER", CountingPattern(templating.PLACEHOLDER, counts))
    capabilities = instrumented.InstrumentedBackend.capabilities

    def counting(self: instrumented.InstrumentedBackend, spec: Any) -> Any:
        counts["capabilities"] += 1
        return capabilities(self, spec)

    monkeypatch.setattr(instrumented.InstrumentedBackend, "capabilities", counting)
    return counts


def objects(request: str, template: dict[str, str]) -> list[Body]:
    return [
        namespace(),
        service_account(),
        credential_backend(kind=request.split("-", maxsplit=1)[0]),
        agent_credential(request=request, template=template),
        agent_task(),
    ]


CASES = {
    # request: (its template, the key that template renders)
    "vault": (TEMPLATE, "URL"),  # renewable lease: the step renews in place
    "awsSts": (TEMPLATE, "URL"),  # unrenewable lease: the step re-issues
    "vault-kv": (STATIC_TEMPLATE, "CONFIG"),  # a static read through a session backend
    "awsSecretsManager": (STATIC_TEMPLATE, "CONFIG"),  # a static secret: re-read
}


@pytest.mark.parametrize("request_kind", sorted(CASES))
def test_an_issue_and_a_scheduled_step_each_parse_and_ask_once(
    request_kind: str, counted: Counter[str]
) -> None:
    template, key = CASES[request_kind]

    async def scenario(h: Harness) -> None:
        await h.start()
        assert h.status()["phase"] == "Active"
        assert key in (h.secret_data("team-a", "t1-db") or {})  # rendered, once
        assert dict(counted) == {"parse": 1, "capabilities": 1}, "create → Active"
        counted.clear()
        await h.advance(h.next_due() or 0)
        assert dict(counted) == {"parse": 1, "capabilities": 1}, "one scheduled step"

    play(Harness(objects(request_kind, template)), scenario)
