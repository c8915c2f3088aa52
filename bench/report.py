"""Turn one run's results into the Markdown table and the PNG plot README shows.

The Markdown holds one row per scenario and size with the issue's targets beside the
measured figures; the PNG plots task->Secret latency percentiles against the number of
tasks created at once, and operator RSS against the number of active tasks (sampled
every half second through the whole run). Nothing here judges a figure: targets are
printed for the reader, never asserted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

TARGETS = {
    "burst": ">= 0.8x floor, >= 72/s, p99 <= 9 s @1,000",
    "paced": "p50 <= 0.3 s, p99 <= 1 s",
    "complete": "p99 <= 2 s, all revoked",
    "restart": "ready <= 30 s @5,000, 0 re-issued",
    "shared": "1 read per refresh",
    "fairness": "victim p99 <= 2 s, no renewal past expiry",
    "quarantine": "every Secret deleted and lease revoked (at Vault) p99 <= 10 s @1,000",
    "rss": "<= 150 MiB @5,000; <= 1.2x idle after",
    "scale": "<= 400 MiB @20,000, restart ready <= 60 s, 0 re-issued, < 1.2x idle 2 min after",
}


def _f(value: Any, fmt: str = "{:.2f}", unit: str = "") -> str:
    if value is None:
        return "-"
    return fmt.format(value) + unit


HEADER: tuple[str, ...] = (
    "scenario",
    "tasks",
    "throughput",
    "vs floor",
    "p50",
    "p90",
    "p99",
    "CPU/task",
)
HEADER += ("RSS after", "target")


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _lat(latency: dict[str, Any]) -> list[str]:
    return [_f(latency.get(k), unit=" s") for k in ("p50", "p90", "p99")]


def _rate(value: Any) -> str:
    return _f(value, "{:.1f}", "/s")


def _ms(value: Any) -> str:
    return _f(value, "{:.1f}", " ms")


def _mib(value: Any) -> str:
    return _f(value, "{:.0f}", " MiB")


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Run `{meta['stamp']}` on {meta['machine']} (load average at start "
        f"{meta['load_start']}, at end {meta.get('load_end', '?')}); workload "
        f"`--mode {meta['mode']} --credential {meta['credential']}`; operator "
        f"{meta['operator_commit']}"
        + (f" with {meta['operator_env']}" if meta.get("operator_env") else "")
        + f". Idle RSS {_mib(results['idle']['rss_mib'])}.",
        "",
        _row(*HEADER),
        _row(*["---"] * len(HEADER)),
    ]
    floors = {f["tasks"]: f for f in results.get("floor", [])}
    for run in results.get("sizes", []):
        size = run["size"]
        floor = floors.get(size)
        if floor:
            lines.append(
                _row(
                    "plain-script floor (16 threads)",
                    f"{size:,}",
                    _rate(floor["throughput"]),
                    "1",
                    *_lat(floor["latency"]),
                    "-",
                    "-",
                    "",
                )
            )
        burst = run.get("burst")
        if burst:
            ratio = None
            if floor and floor.get("throughput") and burst.get("throughput"):
                ratio = burst["throughput"] / floor["throughput"]
            name = "burst (created at once)"
            if not burst.get("complete", True):
                name += (
                    f" - INCOMPLETE: {burst['secrets']}/{size} Secrets after "
                    f"{burst.get('timeout_seconds', 0):.0f} s"
                )
            errors = (burst.get("operator_problems") or {}).get("counts", {}).get("error")
            if errors:
                name += f"; operator logged {errors:,} errors (API timeouts, retried)"
            lines.append(
                _row(
                    name,
                    f"{size:,}",
                    _rate(burst["throughput"]),
                    _f(ratio),
                    *_lat(burst["latency"]),
                    _ms(burst["cpu_ms_per_task"]),
                    _mib(burst["rss_after_mib"]),
                    TARGETS["burst"],
                )
            )
        rst = run.get("restart")
        if rst:
            calls = ", ".join(
                f"{op} {n:g}" for op, n in sorted(rst["backend_calls_at_ready"].items()) if n
            )
            lines.append(
                _row(
                    f"restart (ready = {rst['ready_definition']})",
                    f"{rst['tasks']:,}",
                    "-",
                    "-",
                    f"healthy {_f(rst['health_seconds'], '{:.1f}', ' s')}",
                    "-",
                    f"ready {_f(rst['ready_seconds'], '{:.1f}', ' s')}",
                    "-",
                    _mib(rst["rss_after_mib"]),
                    f"{TARGETS['restart']}; measured {rst['reissued_tasks']} re-issued"
                    f"{_due(rst)}, "
                    f"backend calls at ready: {calls or 'none'}",
                )
            )
        comp = run.get("complete")
        if comp:
            cname = "completion -> Secret deleted"
            if not comp.get("complete", True):
                cname += f" - INCOMPLETE: {comp['latency']['count']}/{comp['tasks']} deleted"
            errors = (comp.get("operator_problems") or {}).get("counts", {}).get("error")
            if errors:
                cname += f"; operator logged {errors:,} errors (API timeouts, retried)"
            revoked = (
                f"Vault tokens {comp['vault_tokens_before']}->{comp['vault_tokens_after']}, "
                f"lease records {comp['session_records_before']}->"
                f"{comp['session_records_after']}"
            )
            lines.append(
                _row(
                    cname,
                    f"{comp['tasks']:,}",
                    _rate(comp["throughput"]),
                    "-",
                    *_lat(comp["latency"]),
                    _ms(comp["cpu_ms_per_task"]),
                    "-",
                    f"{TARGETS['complete']}; {revoked}",
                )
            )
        after = run.get("rss_after_end_mib")
        if after is not None:
            idle = results["idle"]["rss_mib"] or 1
            lines.append(
                _row(
                    f"RSS after all {size:,} ended",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    f"{after:.0f} MiB ({after / idle:.2f}x idle)",
                    TARGETS["rss"],
                )
            )
    paced = results.get("paced")
    if paced:
        name = f"paced {paced['rate']:g}/s for {paced['seconds']:g} s"
        complete = paced["secrets"] >= paced["tasks"]
        if not complete:
            name += (
                f" - INCOMPLETE: {paced['secrets']}/{paced['tasks']} Secrets within 120 s of "
                "the last create (percentiles of those only)"
            )
        lines.append(
            _row(
                name,
                f"{paced['tasks']:,}",
                _rate(paced["achieved_rate"]),
                "-",
                *_lat(paced["latency"]),
                _ms(paced["cpu_ms_per_task"]) if complete else "-",
                _mib(paced["rss_after_mib"]),
                TARGETS["paced"],
            )
        )
    shared = results.get("shared")
    if shared:
        burst = shared["burst"]
        lines.append(
            _row(
                f"shared: {shared['tasks']:,} tasks on one KV secret",
                f"{shared['tasks']:,}",
                _rate(burst["throughput"]),
                "-",
                *_lat(burst["latency"]),
                _ms(burst["cpu_ms_per_task"]),
                _mib(burst["rss_after_mib"]),
                f"{TARGETS['shared']}; measured {shared['reads_per_refresh']:.1f} backend "
                f"reads ({shared.get('hits_per_refresh', 0):.0f} served by the shared read) "
                f"and {shared['secret_writes']} Secret writes per "
                f"{shared['refresh_seconds']:g} s refresh",
            )
        )
    fair = results.get("fairness")
    if fair:
        renewals = fair["victim_renewals"]
        lines.append(
            _row(
                f"fairness: the other namespace's tasks ({fair['victim_pace_per_second']:g}/s) "
                f"while one creates {fair['flood_tasks']:,} at once",
                f"{fair['victim_tasks']:,}",
                "-",
                "-",
                *_lat(fair["victim_latency"]),
                "-",
                "-",
                f"{TARGETS['fairness']}; measured alone p50 "
                f"{_f(fair['victim_alone'].get('p50'), unit=' s')}, flood done in "
                f"{fair['flood_seconds']:.1f} s, {renewals['renewals_seen']} renewals "
                f"(p99 {_f(renewals['delay_after_renew_at'].get('p99'), unit=' s')} after "
                f"renewAt), {renewals['renewed_after_expiry']} past expiry",
            )
        )
    quarantined = results.get("quarantine")
    if quarantined:
        lines.append(
            _row(
                "quarantine -> Secret deleted (one CredentialQuarantine, dynamic DB leases)",
                f"{quarantined['active_before']:,}",
                "-",
                "-",
                *_lat(quarantined["secret_latency"]),
                "-",
                "-",
                f"{TARGETS['quarantine']}; leases revoked at Vault "
                f"{quarantined['leases_revoked']}/{quarantined['leases_before']}, p50 "
                f"{_f(quarantined['revoke_latency'].get('p50'), unit=' s')} p99 "
                f"{_f(quarantined['revoke_latency'].get('p99'), unit=' s')} (polled every "
                f"{quarantined['poll_seconds']:g} s); operator: "
                f"{quarantined.get('complete_message') or '-'}",
            )
        )
    scaled = results.get("scale")
    if scaled:
        lines.extend(_scale_rows(scaled))
    lines.append("")
    lines.extend(_request_rows(results))
    return "\n".join(lines)


def _request_rows(results: dict[str, Any]) -> list[str]:
    """API server requests per task (``apiserver_request_total``, every client, the
    benchmark's own removed), per verb and resource: create -> Secret (the burst) and
    completion -> gone (target <= 5 and <= 4, issue #22)."""
    columns: list[tuple[str, dict[str, float]]] = []
    for run in results.get("sizes", []):
        for key, label in (("burst", "create -> Secret"), ("complete", "completion -> gone")):
            counts = (run.get(key) or {}).get("api_requests_per_task")
            if counts:
                columns.append((f"{label}, {run['size']:,}", counts))
    if not columns:
        return []
    verbs = sorted({v for _, c in columns for v in c if v != "total"})
    lines = [
        "API server requests per task (`apiserver_request_total`, all clients, the "
        "benchmark's own creates, completions, deletions and polling lists removed; rows "
        "under 0.05 per task left out):",
        "",
        _row("request", *(name for name, _ in columns)),
        _row(*["---"] * (len(columns) + 1)),
    ]
    for verb in verbs:
        lines.append(_row(verb, *(_f(c.get(verb), "{:.2f}") for _, c in columns)))
    lines.append(_row("**total**", *(_f(c.get("total"), "{:.1f}") for _, c in columns)))
    lines.append("")
    return lines


def _due(restart: dict[str, Any]) -> str:
    """The tasks a restart saw refreshed because their renewAt came (not counted as
    re-issued), when there were any."""
    due = restart.get("refreshed_when_due") or 0
    return f" ({due} refreshed as they came due)" if due else ""


def _scale_rows(scaled: dict[str, Any]) -> list[str]:
    """The scale scenario (bench/scale.py): fill, at rest, restart, end."""
    fill, restart, size = scaled["fill"], scaled["restart"], f"{scaled['tasks']:,}"
    per_task = scaled.get("rss_bytes_per_task_at_rest")
    back = scaled.get("rss_back_under_seconds")
    return [
        _row(
            "scale: fill (one shared KV secret)",
            size,
            _rate(fill["secrets"] / fill["secrets_seconds"] if fill["secrets_seconds"] else None),
            "-",
            "-",
            "-",
            "-",
            _ms(fill["cpu_ms_per_task"]),
            _mib(scaled["rss_active_mib"]),
            f"all Active after {fill['active_seconds']:.0f} s ({fill['phases']}); API requests "
            f"per task {fill['api_requests_per_task'].get('total', '-')}; peak "
            f"{_mib(fill['rss_peak_mib'])}",
        ),
        _row(
            "scale: restart, the new process holding them",
            size,
            "-",
            "-",
            f"healthy {_f(restart['health_seconds'], unit=' s')}",
            "-",
            f"ready {_f(restart['ready_seconds'], unit=' s')}",
            "-",
            _mib(scaled["rss_restarted_mib"]),
            f"{TARGETS['scale']}; measured every task scheduled after "
            f"{_f(restart.get('scheduled_seconds'), unit=' s')}, {restart['reissued_tasks']} "
            f"re-issued{_due(restart)}, backend "
            f"issue calls {scaled['restart_issue_calls']:g}, "
            + (f"{per_task / 1024:.1f} KiB per task at rest" if per_task is not None else "-")
            + f" (RSS once idle {_mib(scaled.get('rss_restarted_settled_mib'))}, after "
            f"{scaled.get('rest_seconds', 0):.0f} s at rest {_mib(scaled['rss_restarted_mib'])})",
        ),
        _row(
            "scale: RSS after all ended",
            size,
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            _mib(scaled["rss_after_end_mib"]),
            f"{_f(scaled['rss_end_ratio'])}x idle; under 1.2x "
            + (f"after {back:.0f} s" if back is not None else "not within the wait"),
        ),
    ]


def plot(results: dict[str, Any], target: Path) -> None:
    fig = Figure(figsize=(12, 4.5))
    lat_ax, rss_ax = fig.subplots(1, 2)
    sizes = [r for r in results.get("sizes", []) if r.get("burst")]
    xs = [r["size"] for r in sizes]
    for key, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^-")):
        ys = [r["burst"]["latency"][key] for r in sizes]
        if any(y is not None for y in ys):
            lat_ax.plot(xs, ys, style, label=f"burst {key}")
    floors = {f["tasks"]: f for f in results.get("floor", [])}
    fys = [floors[x]["latency"]["p99"] if x in floors else None for x in xs]
    if any(y is not None for y in fys):
        lat_ax.plot(xs, fys, "x:", color="grey", label="floor p99")
    lat_ax.set_xlabel("tasks created at once")
    lat_ax.set_ylabel("task -> Secret (s)")
    lat_ax.set_title("Burst latency percentiles")
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
        lat_ax.set_xscale("log")
    lat_ax.grid(True, alpha=0.3)
    if xs:
        lat_ax.legend()
    else:
        lat_ax.text(
            0.5,
            0.5,
            "no burst results in this run",
            ha="center",
            va="center",
            transform=lat_ax.transAxes,
        )

    samples = results.get("rss_samples", [])
    if samples:
        phases = sorted({s["phase"].split("-")[0] for s in samples})
        for phase in phases:
            pts = [s for s in samples if s["phase"].split("-")[0] == phase]
            rss_ax.scatter(
                [p["active"] for p in pts], [p["rss_mib"] for p in pts], s=6, label=phase
            )
        rss_ax.axhline(150, color="red", linestyle=":", label="target 150 MiB @5,000")
        idle = results["idle"]["rss_mib"]
        if idle:
            rss_ax.axhline(1.2 * idle, color="orange", linestyle=":", label="1.2x idle")
    rss_ax.set_xlabel("active tasks (generated Secrets that exist)")
    rss_ax.set_ylabel("operator RSS (MiB)")
    rss_ax.set_title("Operator RSS against active tasks")
    rss_ax.grid(True, alpha=0.3)
    if samples:
        rss_ax.legend(fontsize=7)
    fig.suptitle(f"agentcred bench {results['meta']['stamp']} ({results['meta']['machine']})")
    fig.tight_layout()
    fig.savefig(target, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report results.json [out-folder]``: re-render the table and plot."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m bench.report <results.json> [out folder]", file=sys.stderr)
        return 2
    results = json.loads(Path(args[0]).read_text())
    out = Path(args[1]) if len(args) > 1 else Path(args[0]).parent
    (out / "table.md").write_text(markdown(results))
    plot(results, out / "plot.png")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
