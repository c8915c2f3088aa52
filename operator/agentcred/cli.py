"""The ``agentcred`` command: ``agentcred run`` starts the operator.

Kopf does the watching; this module loads the settings, configures logging,
imports the handlers (which registers them) and runs Kopf's operator, the settings
in its typed memo (``handlers.OperatorMemo``), until SIGTERM or SIGINT, on which Kopf
stops its watchers and the process exits 0.

With ``AGENTCRED_LEADER_ELECTION=true`` (the Deployment's two replicas) Kopf starts only
once this replica holds the leader Lease (``agentcred.leadership``); a leader that loses
the Lease exits with status 1 at once, and one that is stopped releases it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import uuid

import kopf

from agentcred import __version__, handlers, leadership, logs, tracing
from agentcred import settings as settings_mod
from agentcred.kube.client import make_api_client

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
    log.info("agentcred %s starting", __version__, extra={"namespaces": ",".join(watched) or "*"})
    tracing.configure()  # spans over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    if config.leader_election:
        try:
            asyncio.run(_run_elected(config))
        except asyncio.CancelledError:
            log.info("agentcred stopped while standing by")
            return 0
    else:
        asyncio.run(_operator(config))
    tracing.shutdown()  # flush the last spans
    log.info("agentcred stopped")
    return 0


async def _operator(config: settings_mod.Settings) -> None:
    await kopf.operator(
        memo=handlers.OperatorMemo(settings=config),
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=config.liveness_endpoint,
    )


def _lost(reason: str) -> None:
    """Leadership is gone: stop handling at once, so no handler of ours runs next to the new
    leader's. Exit 1 without unwinding (as controller-runtime does); the kubelet restarts
    this pod as a standby. Write-ahead lease records make a cut-off issuance safe."""
    log.error("leader election lost (%s); exiting", reason)
    logging.shutdown()
    os._exit(1)


async def _run_elected(config: settings_mod.Settings) -> None:
    api = await make_api_client()
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    claim = leadership.Leadership(
        api,
        config.namespace,
        config.leader_election_lease_name,
        identity,
        leadership.LeadershipTiming(
            lease_duration=config.leader_election_lease_duration.total_seconds(),
            renew_deadline=config.leader_election_renew_deadline.total_seconds(),
            retry_period=config.leader_election_retry_period.total_seconds(),
        ),
    )
    standby = leadership.StandbyHealth(config.liveness_endpoint)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    try:
        # Until Kopf runs (it handles signals itself), SIGTERM/SIGINT end the wait.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, main.cancel if main else (lambda: None))
        await standby.start()
        log.info("leader election: competing for the lease", extra={"identity": identity})
        await claim.acquire()
    except BaseException:
        await api.close()
        raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await standby.stop()
    keeping = asyncio.create_task(claim.keep(on_lost=_lost))
    try:
        await _operator(config)
    finally:
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
        await claim.release()
        await api.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args.namespace)
    return 2  # pragma: no cover - argparse enforces the choice


if __name__ == "__main__":
    sys.exit(main())
