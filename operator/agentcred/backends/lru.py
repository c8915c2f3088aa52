"""A small thread-safe LRU map for SDK clients and HTTP sessions.

Backends keep one client per address or endpoint so that connections are pooled; with
addresses coming from many CredentialBackends, an unbounded map would only ever grow.
The least recently used entry is dropped beyond ``maxsize`` (``AGENTCRED_CLIENT_CACHE_SIZE``).
A dropped client is not closed here: another thread may still be using it; it is
closed by garbage collection once nobody holds it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
DEFAULT_SIZE = 64


class LruCache(Generic[K, V]):
    def __init__(self, maxsize: int = DEFAULT_SIZE) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize}")
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``make()`` stored under it (made once per key)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = self._items[key] = make()
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def __len__(self) -> int:
        return len(self._items)

    def drain(self) -> list[V]:
        """Remove and return every value (for closing at shutdown)."""
        with self._lock:
            values = list(self._items.values())
            self._items.clear()
            return values
