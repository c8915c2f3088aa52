"""The ``agentcred`` command: ``agentcred run`` starts the operator.

Kopf does the watching; this module loads the settings, configures logging,
imports the handlers (which registers them) and runs Kopf's operator until SIGTERM
or SIGINT, on which Kopf stops its watchers and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

import kopf

from agentcred import __version__, handlers, logs
from agentcred import settings as settings_mod

log = logging.getLogger("agentcred")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentcred", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agentcred {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator (configured by AGENTCRED_* variables)")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    return parser


def run(namespaces: list[str]) -> int:
    try:
        config = settings_mod.load()
    except settings_mod.SettingsError as exc:
        print(f"agentcred: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_format, config.log_level)
    watched = tuple(namespaces) or config.namespaces
    config = dataclasses.replace(config, namespaces=watched)
    handlers.install(config)
    log.info("agentcred %s starting", __version__, extra={"namespaces": ",".join(watched) or "*"})
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not watched,
            namespaces=watched,
            liveness_endpoint=config.liveness_endpoint,
        )
    )
    log.info("agentcred stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args.namespace)
    return 2  # pragma: no cover - argparse enforces the choice


if __name__ == "__main__":
    sys.exit(main())
