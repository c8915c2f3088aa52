"""The operator's state, in one typed object Kopf hands to every handler as ``memo``.

``cli`` builds it with the settings and passes it to ``kopf.operator(memo=...)``; the
startup handler adds the shared dependencies and the background tasks, the cleanup
handler stops them. Kopf gives each resource a shallow copy of its memo, made when the
resource is first seen; this one copies as itself (``__copy__``): it holds only what the
whole operator shares (``Deps``, the stop event, the task list), and 20,000 resources
need not carry 20,000 copies of four references. No module global holds operator state.
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

    def __copy__(self) -> OperatorMemo:
        """Kopf's per-resource copy is this object: nothing in it belongs to one resource."""
        return self

    @property
    def deps(self) -> Deps:
        """The shared dependencies; resource handlers only run once startup built them."""
        if self.started is None:
            raise RuntimeError("the operator's startup handler has not run")
        return self.started
