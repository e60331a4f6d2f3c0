"""The Markdown report (and PNG plots) in ``bench/results/``."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import ClosedLoop, OpenLoop
from bench.measure import Usage


@dataclass(frozen=True)
class Result:
    name: str
    baseline: str
    closed: ClosedLoop
    opened: OpenLoop
    closed_usage: Usage
    open_usage: Usage


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}×" if base else "n/a"


def _table(results: list[Result]) -> list[str]:
    by_name = {r.name: r for r in results}
    rows = [
        "| scenario | req/s (closed) | × its baseline | p50 ms @ ½ peak | × | p99 ms @ ½ peak | × "
        "| sent/s | server CPU % (sat.) | CPU ms/req | peak RSS MB | errors | baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        base = by_name.get(r.baseline)
        rps = base.closed.rps if base else None
        p50 = base.opened.p50_ms if base else None
        p99 = base.opened.p99_ms if base else None
        cpu_ms = 1000 * r.closed_usage.cpu_seconds / max(1, r.closed.requests)
        rows.append(
            f"| {r.name} | {r.closed.rps:,.0f} | {_ratio(r.closed.rps, rps)} "
            f"| {r.opened.p50_ms:.1f} | {_ratio(r.opened.p50_ms, p50)} "
            f"| {r.opened.p99_ms:.1f} | {_ratio(r.opened.p99_ms, p99)} "
            f"| {r.opened.achieved:,.0f} | {r.closed_usage.cpu_percent:.0f} | {cpu_ms:.2f} "
            f"| {max(r.closed_usage.peak_rss_mb, r.open_usage.peak_rss_mb):.0f} "
            f"| {r.closed.errors + r.opened.errors} | {r.baseline} |"
        )
    return rows


def _plot(results: list[Result], out: Path) -> str | None:
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [r.name for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 0.5 * len(names) + 2))
    left.barh(names, [r.closed.rps for r in results], color="#4a7ab5")
    left.set_xlabel("req/s, saturated (closed loop)")
    left.invert_yaxis()
    y = range(len(names))
    right.barh([i - 0.2 for i in y], [r.opened.p50_ms for r in results], 0.4, label="p50")
    right.barh([i + 0.2 for i in y], [r.opened.p99_ms for r in results], 0.4, label="p99")
    right.set_yticks(list(y), [""] * len(names))
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("latency ms at half the peak rate (open loop, log scale)")
    right.legend()
    fig.tight_layout()
    path = out / "bench.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def write_report(
    results: list[Result], out: Path, seconds: float, profile: list[str] | None
) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    lines = [
        f"# Khaalga benchmark, {stamp}",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {seconds:.0f} s per measurement; load average before "
        f"the report was written {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (anything above "
        "~2 means other work shared the cores and the figures are noisy).",
        "",
        "Server alone on core 0; wrk, the open-loop generator and the simulators on core 1. "
        "Closed loop: wrk, 1 thread, 32 connections. Open loop: fixed rate = half the "
        "closed-loop peak, latency from each request's intended start. `sent/s` below the "
        "rate means the Python generator, not the server, was the limit for that row. "
        "See docs/performance.md for how to read this.",
        "",
        *_table(results),
        "",
    ]
    plot = _plot(results, out)
    if plot:
        lines += [f"![throughput and latency]({plot})", ""]
    if profile:
        lines += ["## Profile: the catalog query, in process (pyinstrument)", "", "```",
                  *profile, "```", ""]  # fmt: skip
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
