"""Run the operator as its image installs it: without the dev environment's test clients.

The image installs the operator and its runtime dependencies only (``pip install
".[all]"``). The dev virtualenv the benchmark runs from also holds the synchronous
``kubernetes`` client (for the tests), and Kopf imports it whenever it is installed
(``kopf/_cogs/helpers/thirdparty.py``), pulling requests, oauthlib and google-auth in
behind it: ~24 MiB that the production process never has. Hiding it here makes the
benchmark's memory figures the image's. Nothing else changes: the operator's code and
settings are those of ``agentcred run``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

HIDDEN = "kubernetes"  # the sync client; kubernetes_asyncio stays


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == HIDDEN or fullname.startswith(HIDDEN + "."):
            raise ModuleNotFoundError(f"{fullname} is not in the operator's image", name=fullname)
        return None


def hide_dev_packages() -> None:
    sys.meta_path.insert(0, _Hide())


if __name__ == "__main__":
    hide_dev_packages()
    from agentcred.cli import main

    sys.exit(main(sys.argv[1:]))
