"""The secrets-stay-secret check: no credential value in logs, Events or status.

Every value a test saw in a generated Secret (and every secret the test itself put
into a Secret) is looked for in the operator's whole output, in every Event of the
namespace and in every AgentTask/AgentCredential object's status.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable

from agentcred.models.api_names import Plural
from support.kube import GROUP, VERSION
from support.operator import OperatorProcess
from support.scenario import Scenario

MIN_LEN = 8  # shorter values (e.g. "1") would match by accident


def assert_no_leaks(scene: Scenario, operators: Iterable[OperatorProcess]) -> None:
    values = {v for v in scene.values if len(v) >= MIN_LEN}
    if not values:
        return
    haystacks: dict[str, str] = {}
    for i, op in enumerate(operators):
        haystacks[f"operator log {i}"] = op.log_path.read_text(errors="replace")
    for event in scene.events():
        haystacks[f"event {event.reason}"] = f"{event.message} {event.reason}"
    for plural in (Plural.TASKS, Plural.CREDENTIALS):
        listed = scene.custom.list_namespaced_custom_object(GROUP, VERSION, scene.ns, plural)
        for item in listed["items"]:
            haystacks[f"{plural}/{item['metadata']['name']}"] = json.dumps(item.get("status", {}))
    found = [
        (where, value[:3] + "...")
        for where, text in haystacks.items()
        for value in values
        if value in text
    ]
    assert not found, f"credential values leaked into: {found}"


def exception_texts(errors: Iterable[BaseException]) -> list[str]:
    """Everything an error could show a user: its traceback, repr, and every cause's."""
    texts: list[str] = []
    for exc in errors:
        texts += ["".join(traceback.format_exception(exc)), repr(exc)]
        cause = exc.__cause__
        while cause is not None:
            texts += [str(cause), repr(cause)]
            cause = cause.__cause__
    return texts
