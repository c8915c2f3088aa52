"""The docs stay true to the repository: no relative link leads nowhere, and every reason
the operator can put on a condition or an Event is explained in docs/troubleshooting.md.

Runs in `make unit` and `make test`. The checks themselves are pure functions
(tests/support/docs_check.py); the tests below also feed them made-up code and pages, so
a check that stopped seeing a reason or a broken link would fail here.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from support.docs_check import (
    anchors,
    broken_links,
    emitted_reasons,
    links,
    listed_reasons,
    missing_reasons,
    package_sources,
    slug,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "agentcred"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"

# Reasons the scan must keep finding however the code that emits them is arranged: if a
# refactor moves them where the scan cannot see, this fails instead of the docs check
# silently passing.
KNOWN = {
    "NotAllowed",
    "InvalidBackend",
    "IdentityChanged",
    "TTLExceeded",
    "Unleased",
    "SecretConflict",
    "RevokeFailed",
    "TemplateError",
    "RenewFailed",
    "CredentialNotFound",
    "BackendUnavailable",
    "DeadlineExceeded",
    "OwnerDeleted",
    "PodsDeleted",
    "CredentialIssued",
    "LeaseRenewed",
    "CredentialRevoked",
    "TaskEnded",
}


def _pages() -> dict[str, str]:
    files = [REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    files += (REPO / "examples").rglob("README.md")
    return {f.relative_to(REPO).as_posix(): f.read_text() for f in files}


def _repository_paths() -> set[str]:
    """Every path in the checkout (tracked or not, ignored ones left out), with directories;
    without git (an exported tree), every file outside hidden directories."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        out = [
            p.relative_to(REPO).as_posix()
            for p in REPO.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(REPO).parts)
        ]
    paths = {p for p in out if p}
    for p in list(paths):
        parts = p.split("/")
        paths.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return paths


# --- the repository -------------------------------------------------------------------


def test_no_relative_link_is_broken() -> None:
    assert broken_links(_pages(), _repository_paths()) == []


def test_troubleshooting_lists_every_reason_the_operator_can_emit() -> None:
    emitted = emitted_reasons(package_sources(PACKAGE))
    assert missing_reasons(emitted, TROUBLESHOOTING.read_text()) == []


def test_the_scan_still_sees_the_reasons_it_must() -> None:
    assert set(emitted_reasons(package_sources(PACKAGE))) >= KNOWN


# --- the reason scan, on made-up code -------------------------------------------------


def _scan(**modules: str) -> set[str]:
    return set(
        emitted_reasons({f"pkg.{name}": textwrap.dedent(src) for name, src in modules.items()})
    )


def test_a_doc_without_one_emitted_reason_fails_the_check() -> None:
    emitted = emitted_reasons(package_sources(PACKAGE))
    page = "| reason | means |\n|---|---|\n" + "".join(f"| `{r}` | x |\n" for r in emitted)
    assert missing_reasons(emitted, page) == []
    dropped = "| `TemplateError` | x |\n"
    problems = missing_reasons(emitted, page.replace(dropped, ""))
    assert [p.split(" ")[0] for p in problems] == ["TemplateError"]
    assert "agentcred.services." in problems[0]  # says where it is emitted


@pytest.mark.parametrize(
    ("modules", "reason"),
    [
        ({"a": 'condition("Ready", ok=False, reason="Broken", message="m")'}, "Broken"),
        (
            {
                "errors": "class Failed(Exception):\n    def __init__(self, reason, message): ...",
                "a": 'raise Failed("Positional", "no luck")',
            },
            "Positional",
        ),
        (
            {
                "a": "async def end(deps, task, phase, reason, message): ...\n"
                'async def f(d, t):\n    await end(d, t, "Failed", "Ended", "m")'
            },
            "Ended",
        ),
        (
            {
                "ceiling": "from dataclasses import dataclass\n"
                "@dataclass\nclass Breach:\n    reason: str\n    message: str\n"
                'TOO_LONG = "TooLong"\n'
                'def f():\n    return Breach(TOO_LONG, "m")',
            },
            "TooLong",
        ),
        ({"base": 'class Down(Exception):\n    reason = "Unavailable"'}, "Unavailable"),
        (
            {
                "report": 'DONE = "WorkDone"',
                "a": "from pkg import report\n"
                "async def f(api, task):\n    await event(api, task, report.DONE, 'm')",
                "b": "async def event(api, task, reason, message): ...",
            },
            "WorkDone",
        ),
        (
            {
                "consts": 'class Reason:\n    GONE = "Gone"',
                "a": "from pkg.consts import Reason\n"
                "def f():\n    return condition('Ready', reason=Reason.GONE.value)",
            },
            "Gone",
        ),
        (
            {
                "a": "def f(x):\n"
                '    shown = x if x == "Other" else "Chosen"\n'
                "    return condition('Ready', reason=shown)"
            },
            "Chosen",
        ),
        (
            {
                "a": "def f(exc):\n"
                '    problem = ("Picked", str(exc))\n'
                "    return condition('Ready', reason=problem[0])"
            },
            "Picked",
        ),
        ({"a": 'def cause():\n    return "Deleted", "the task was deleted"'}, "Deleted"),
        ({"a": 'def v():\n    return PHASE, "PodFailed", f"{n} pods"'}, "PodFailed"),
        ({"a": 'body = {"type": "Warning", "reason": "FromDict"}'}, "FromDict"),
        ({"reasons": 'DECLARED = "Declared"'}, "Declared"),
    ],
    ids=[
        "keyword",
        "constructor-position",
        "function-position",
        "dataclass-field-via-constant",
        "error-class-attribute",
        "module-constant",
        "enum-value",
        "conditional-local",
        "tuple-subscript",
        "returned-pair",
        "returned-triple",
        "dict-item",
        "declared-module",
    ],
)
def test_the_scan_finds_a_reason_however_it_is_passed(modules: dict[str, str], reason: str) -> None:
    assert reason in _scan(**modules)


def test_the_scan_leaves_other_strings_alone() -> None:
    found = _scan(
        a="""
        FINISHED = ("Succeeded", "Failed")
        KIND = "AgentTask"
        def f(exc):
            log.info("x", extra={"kind": "Secret"})
            condition("Ready", ok=True, reason="Fine", message="ok")
            audit(reason="postponed")
            return "Secret", "v1"
        """
    )
    assert found == {"Fine"}


# --- links and the troubleshooting page, on made-up pages -----------------------------


def test_links_skip_code_and_keep_reference_definitions() -> None:
    page = textwrap.dedent(
        """\
        See [the guide](docs/a.md#setup) and [`crds/`](crds/).
        `[not a link](nowhere.md)`
        ```
        [also not](nowhere.md)
        ```
        [ref]: docs/b.md
        A link whose [text
        wraps](docs/c.md) still counts.
        """
    )
    assert links(page) == ["docs/a.md#setup", "crds/", "docs/c.md", "docs/b.md"]


def test_a_broken_path_or_anchor_is_reported() -> None:
    pages = {
        "README.md": "[ok](docs/a.md#the-setup) [gone](docs/missing.md) "
        "[bad anchor](docs/a.md#nowhere) [web](https://example.com/x) [dir](crds/)",
        "docs/a.md": "# The `setup`\n[up](../README.md) [self](#the-setup) [out](../../x.md)",
    }
    problems = broken_links(pages, {"README.md", "docs", "docs/a.md", "crds"})
    assert problems == [
        "README.md: docs/missing.md (no docs/missing.md in the repository)",
        "README.md: docs/a.md#nowhere (no heading #nowhere in docs/a.md)",
        "docs/a.md: ../../x.md (points outside the repository)",
    ]


def test_anchors_follow_github() -> None:
    page = "# Placeholders cannot collide\n## `maxTTL` caps what is issued\n## A, b\n## A, b"
    assert anchors(page) == {
        "placeholders-cannot-collide",
        "maxttl-caps-what-is-issued",
        "a-b",
        "a-b-1",
    }
    assert slug("What `agentcred-tenant` lets a tenant do") == (
        "what-agentcred-tenant-lets-a-tenant-do"
    )


def test_listed_reasons_come_from_headings_and_first_cells() -> None:
    page = textwrap.dedent(
        """\
        ### `NotAllowed`
        | reason | object |
        |---|---|
        | `SecretConflict` | `AgentTask` |
        Prose naming `TemplateError` does not list it.
        """
    )
    assert listed_reasons(page) == {"NotAllowed", "SecretConflict"}
