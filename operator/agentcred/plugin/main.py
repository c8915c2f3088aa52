"""``kubectl-agentcred``: parse the command line, run the command as the user, print.

Exit codes (docs/incident-response.md), for scripts:

    0  done
    1  an error (the API server refused or could not be reached, a wait timed out)
    2  usage (a flag missing or malformed)
    3  not found (the task or quarantine named does not exist)
    4  forbidden (your RBAC does not allow it)

A command group is a module with ``register(commands)`` adding its sub-commands, each
with ``run=`` an ``async (Api, args) -> (data, text)``: ``data`` is printed for
``-o json|yaml``, ``text`` for the default table view. Add a module to ``GROUPS``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from agentcred import __version__
from agentcred.plugin import approval, leases, output, quarantine, status, tasks
from agentcred.plugin.api import PluginError, connect

GROUPS: tuple[ModuleType, ...] = (status, tasks, approval, quarantine, leases)
EXIT_USAGE = 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl agentcred",
        description=(
            "agentcred for people: a task's status, approvals, quarantines, renewals, leases."
        ),
        epilog="exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 forbidden",
    )
    top.add_argument("--version", action="version", version=f"kubectl-agentcred {__version__}")
    _connection_flags(top, None)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    for command in commands.choices.values():  # also after the command, as kubectl takes them
        _connection_flags(command, argparse.SUPPRESS)
    return top


def _connection_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=default,
        help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument("--context", default=default, help="kubeconfig context")
    parser.add_argument(
        "--as", dest="as_user", default=default, metavar="USER", help="act as USER (impersonate)"
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=output.FORMATS,
        default=default,
        help="table (default), json, yaml",
    )


async def _run(args: argparse.Namespace) -> tuple[Any, str]:
    async with connect(args.kubeconfig, args.context, args.as_user) as api:
        result: tuple[Any, str] = await args.run(api, args)
        return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 on a usage error
    try:
        data, text = asyncio.run(_run(args))
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    fmt = args.output or "table"
    sys.stdout.write(text if fmt == "table" else output.dump(data, fmt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
