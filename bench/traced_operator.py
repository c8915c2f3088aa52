"""Run ``agentcred`` with a SIGUSR2 handler that dumps a tracemalloc heap snapshot.

Used only by ``make bench ARGS=--tracemalloc N``: the benchmark starts the operator as
``python bench/traced_operator.py run`` with ``BENCH_TRACEMALLOC_FRAMES=N`` and signals it
at the points it wants to look at (idle, N tasks active, after they ended). Kept out of
the operator package so that profiling needs no change to the code being profiled.

Tracing starts after the operator's modules are imported (``python -X tracemalloc=25``
makes the imports alone take minutes on two busy cores): module-level memory is not
traced, which the per-task figures (a snapshot at N tasks minus the idle one) do not
need anyway.

Each dump writes ``tracemalloc-<n>.pickle`` (``tracemalloc.Snapshot.dump``; only when
tracing), a ``.types.json`` histogram of live objects by type (``gc.get_objects``), then
an empty ``.done`` marker, into ``$BENCH_TRACEMALLOC_DIR``. ``BENCH_TRACEMALLOC_FRAMES=0``
gives the histograms alone, at no cost between dumps.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from as_installed import hide_dev_packages  # type: ignore[import-not-found]  # beside this script

hide_dev_packages()  # before Kopf looks for the sync client (bench/as_installed.py)

import hvac  # noqa: E402, F401
import kopf  # noqa: E402, F401

import agentcred.backends.vault  # noqa: E402, F401  (imported before tracing starts)
from agentcred.cli import main  # noqa: E402

_count = 0


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def dump(_signum: int, _frame: FrameType | None) -> None:
    global _count  # noqa: PLW0603 (one counter per process, only touched here)
    _count += 1
    folder = Path(os.environ.get("BENCH_TRACEMALLOC_DIR", "."))
    stem = folder / f"tracemalloc-{_count:03d}"
    gc.collect()
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(stem.with_suffix(".pickle")))
    histogram = collections.Counter(_type_name(o) for o in gc.get_objects())
    traced, peak = tracemalloc.get_traced_memory()
    stem.with_suffix(".types.json").write_text(
        json.dumps(
            {
                "traced_bytes": traced,
                "peak_traced_bytes": peak,
                "gc_objects": sum(histogram.values()),
                "types": dict(histogram.most_common(80)),
            },
            indent=1,
        )
    )
    stem.with_suffix(".done").touch()


if __name__ == "__main__":
    frames = int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "0"))
    if frames:  # 0: only the object histogram (no tracing overhead)
        tracemalloc.start(frames)
    signal.signal(signal.SIGUSR2, dump)
    sys.exit(main(sys.argv[1:]))
