"""A real trace store for the tests: Jaeger v2, in memory, on 127.0.0.1.

Why this exists: the operator's OpenTelemetry spans (operator/agentcred/tracing.py) must
be shown to reach a real OTLP receiver and to join the client's trace there, which only
a trace store that parses OTLP and answers queries shows. ``jaeger`` v1.75.0 is Jaeger v2,
the all-in-one built on the OpenTelemetry collector; ``scripts/build-tools.sh jaeger``
builds it from the Go module proxy into the shared cache (cold: many minutes on 2 cores,
so it starts in its own chain and delays no other server).

The config written here replaces the binary's default (which binds fixed ports such as
4317/4318/16686/8888 on localhost): one OTLP/HTTP receiver, a memory store, the query
extension (HTTP ``/api/traces/<id>``; its gRPC port must be set too), a short batch
timeout so a span is queryable well under a second after export, no self-tracing and no
metrics port. Exported: ``JAEGER_OTLP_ENDPOINT`` (the OTLP/HTTP base URL, for an
operator's ``OTEL_EXPORTER_OTLP_ENDPOINT``) and ``JAEGER_QUERY_URL``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agentcred_testbed import procs
from agentcred_testbed.procs import StateDir, TestbedError

NAME = "jaeger"
NAMES: tuple[str, ...] = (NAME,)
VERSION = "v1.75.0"
BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build-tools.sh"
# A cold build is long (a few hundred Go packages on 2 cores); a warm one prints the path.
BUILD_TIMEOUT = 3600.0
STARTUP_TIMEOUT = 60.0
# The names in .testbed/env. Not OTEL_EXPORTER_OTLP_ENDPOINT itself: every process that
# reads the env file would then export spans; a test that wants traces passes this value
# as OTEL_EXPORTER_OTLP_ENDPOINT to the operator it starts.
OTLP_ENDPOINT = "JAEGER_OTLP_ENDPOINT"
QUERY_URL = "JAEGER_QUERY_URL"

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000

receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}

processors:
  batch:
    timeout: 100ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def executable() -> Path:
    """The cached ``jaeger`` binary, built on first use by scripts/build-tools.sh."""
    try:
        out = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "jaeger"],
            check=True,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            env={**os.environ, "JAEGER_VERSION": VERSION},
        )
    except subprocess.CalledProcessError as exc:
        raise TestbedError(f"building jaeger failed:\n{exc.stderr[-3000:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"building jaeger took over {BUILD_TIMEOUT:.0f}s") from exc
    return Path(out.stdout.strip().splitlines()[-1])


def config(otlp_port: int, query_port: int, query_grpc_port: int) -> str:
    return CONFIG.format(
        otlp_port=otlp_port, query_port=query_port, query_grpc_port=query_grpc_port
    )


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    """Build (once) and start Jaeger; return the OTLP endpoint and the query URL."""
    binary = executable()
    procs.stop(state, NAME)
    otlp, query, grpc = procs.free_port(), procs.free_port(), procs.free_port()
    path = state.data(NAME) / "config.yaml"
    path.write_text(config(otlp, query, grpc))
    query_url = f"http://127.0.0.1:{query}"
    procs.serve(
        state,
        NAME,
        [str(binary), "--config", str(path)],
        f"{query_url}/api/services",
        timeout=STARTUP_TIMEOUT,
        what=f"answering on {query_url}",
    )
    procs.wait_until(
        state, NAME, lambda: procs.port_open(otlp), timeout=STARTUP_TIMEOUT, what="receiving"
    )
    return {
        OTLP_ENDPOINT: f"http://127.0.0.1:{otlp}",
        QUERY_URL: query_url,
    }


def down(state: StateDir) -> None:
    procs.stop(state, NAME)
