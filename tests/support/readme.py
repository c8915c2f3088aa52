"""Snippets of README.md that tests run as written."""

from __future__ import annotations

import re
from typing import Any

import yaml

from support.kube import REPO

CONSUMER_POD_HEADING = "### Consume the Secret from a pod"


def consumer_pod() -> dict[str, Any]:
    """The Pod of README's "Consume the Secret from a pod": the heredoc of the first ``sh``
    block under that heading, parsed."""
    text = (REPO / "README.md").read_text()
    assert CONSUMER_POD_HEADING in text, f"README.md has no {CONSUMER_POD_HEADING!r}"
    section = text.split(CONSUMER_POD_HEADING, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no sh block under the heading"
    heredoc = re.search(r"<<'EOF'\n(.*?)\nEOF\n", block.group(1), re.S)
    assert heredoc, "no <<'EOF' heredoc in the snippet"
    pod: dict[str, Any] = yaml.safe_load(heredoc.group(1))
    return pod
