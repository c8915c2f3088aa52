"""The operator's state, in one typed object Kopf hands to every handler as ``memo``.

``cli`` builds it with the settings and passes it to ``kopf.operator(memo=...)``; the
startup handler adds the shared dependencies and the background tasks, the cleanup
handler stops them. Kopf gives each resource a shallow copy of it, made when the
resource is first seen (after startup): every copy shares the same ``Deps``, stop event
and task list. No module global holds operator state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agentcred.services.deps import Deps
from agentcred.settings import Settings


@dataclass
class OperatorMemo:
    settings: Settings
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # ends the background loops
    watchers: list[asyncio.Task[None]] = field(default_factory=list)  # the background tasks
    started: Deps | None = None  # set by the startup handler, before any resource handler

    @property
    def deps(self) -> Deps:
        """The shared dependencies; resource handlers only run once startup built them."""
        if self.started is None:
            raise RuntimeError("the operator's startup handler has not run")
        return self.started
