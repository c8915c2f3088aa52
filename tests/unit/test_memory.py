"""``memory.trim`` gives a burst's freed heap back to the OS (glibc, as in the image)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from agentcred import memory

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

blocks = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]   # ~200 MB on the heap
kept = blocks[::100]                                                 # pins scattered pages
del blocks
gc.collect()
before = rss_kib()
trimmed = memory.trim()
after = rss_kib()
print(json.dumps({"trimmed": trimmed, "before": before, "after": after, "kept": len(kept)}))
"""


def test_trim_returns_a_bursts_freed_heap_to_the_os() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["trimmed"] is True
    assert result["after"] < result["before"] - 50_000  # KiB: most of the ~200 MB freed
