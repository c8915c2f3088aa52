"""Load kubernetes_asyncio's generated API and model classes on first use, not at import.

``kubernetes_asyncio.client`` imports every generated API and model module up front
(about 830 modules, ~60 MiB of RSS), and Kopf imports it whenever the library is
installed. The operator uses a handful of API classes with raw JSON, so that was
over half of its idle memory (docs/performance.md). ``install()`` makes the three
generated packages (``client``, ``client.api``, ``client.models``) resolve each name
from its own ``from <module> import <Name>`` line when the name is first read; the
modules themselves are the library's, unchanged. It must run before anything imports
the library (``agentcred/__init__.py`` calls it first), and does nothing if it is too late.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import re
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PACKAGES = frozenset(
    {
        "kubernetes_asyncio.client",
        "kubernetes_asyncio.client.api",
        "kubernetes_asyncio.client.models",
    }
)
_IMPORT = re.compile(r"^from (kubernetes_asyncio\.client[\w.]*) import (\w+)\s*$", re.MULTILINE)
_VALUE = re.compile(r"^(__version__) = \"([^\"]*)\"\s*$", re.MULTILINE)


class LazyPackage(types.ModuleType):
    """A generated package whose names are imported from their modules when first read."""

    _lazy_names: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        module = self.__dict__.get("_lazy_names", {}).get(name)
        if module is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_lazy_names", {})))


class _Loader(importlib.abc.Loader):
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return LazyPackage(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        text = Path(self.origin).read_text(encoding="utf-8")
        names = {name: source for source, name in _IMPORT.findall(text)}
        module.__dict__["_lazy_names"] = names
        module.__dict__["__all__"] = sorted(names)
        module.__dict__.update(dict(_VALUE.findall(text)))


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        spec.loader = _Loader(spec.origin)
        return spec


def install() -> bool:
    """Make the generated packages lazy; False if the library is already imported."""
    if any(name in sys.modules for name in PACKAGES):
        return False
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    return True
