"""Structured logging: one JSON object per line (or plain text for humans).

Kopf's formatter is used for every logger, ours included, so that a log pipeline
parses one format and per-object records carry the resource reference. Nothing
that calls a logger may pass a credential value (tests scan the operator output).
"""

from __future__ import annotations

import logging
import sys

import kopf


def configure(log_format: str, level: str) -> None:
    fmt = kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=level == "DEBUG", log_format=fmt, log_refkey="object")
    logging.getLogger().setLevel(level)
    # botocore logs request and response bodies (secret values) at DEBUG: never below WARNING.
    for noisy in (
        "aiohttp.access",
        "urllib3",
        "asyncio",
        "kubernetes_asyncio",
        "botocore",
        "boto3",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Kopf narrates every handler of every object at INFO ("Handler 'start' succeeded.",
    # "Creation is processed: ..."): 2-5 lines per task, 2-4 % of a burst's CPU, and
    # nothing the audit trail and our own lines do not say. At INFO they are dropped;
    # Kopf's warnings and errors (a handler failing, a retry) are always kept.
    if level != "DEBUG":
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # The audit trail is already one JSON object per record: write it as is, on its own.
    audit = logging.getLogger("agentcred.audit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit.handlers[:] = [handler]
    audit.setLevel(logging.INFO)
    audit.propagate = False
