"""An in-process harness for the operator's core: a fake Kubernetes API server the
operator's own kube layer talks to unchanged, fake backends per capability, one fake
clock, and a builder that wires them into ``Deps`` (harness.py explains the seams).
"""

from support.harness.backends import (
    Failing,
    Gate,
    RenewableLease,
    Slow,
    StaticSecret,
    UnrenewableLease,
    failing_permanently,
    failing_temporarily,
)
from support.harness.clock import START, FakeClock
from support.harness.harness import Harness, count, play
from support.harness.server import Call, FakeApiServer

__all__ = [
    "START",
    "Call",
    "Failing",
    "FakeApiServer",
    "FakeClock",
    "Gate",
    "Harness",
    "RenewableLease",
    "Slow",
    "StaticSecret",
    "UnrenewableLease",
    "count",
    "failing_permanently",
    "failing_temporarily",
    "play",
]
