"""The Markdown report (and PNG plots) in ``bench/results/``."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import ClosedLoop, OpenLoop, pooled
from bench.machine import MachineSpeed
from bench.measure import Usage
from bench.ways import Way


@dataclass(frozen=True)
class Result:
    name: str
    baseline: str
    closed: ClosedLoop
    opened: OpenLoop
    closed_usage: Usage
    open_usage: Usage
    # Open loop at the half-peak rate of the gateway row named by the key.
    paired: dict[str, OpenLoop] = field(default_factory=dict)


@dataclass(frozen=True)
class Soak:
    scenarios: list[str]  # sent in turn
    rate: float
    opened: OpenLoop
    usage: Usage  # RSS sampled every few seconds

    def slope_mb_per_min(self, skip: float = 60.0) -> float:
        """Least-squares slope of RSS over time, after the first ``skip`` seconds
        (caches and pools fill up then)."""
        points = [
            (t, m) for t, m in zip(self.usage.times, self.usage.samples, strict=True) if t >= skip
        ] or list(zip(self.usage.times, self.usage.samples, strict=True))
        if len(points) < 2:
            return 0.0
        mean_t = sum(t for t, _ in points) / len(points)
        mean_m = sum(m for _, m in points) / len(points)
        var = sum((t - mean_t) ** 2 for t, _ in points)
        cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
        return 60 * cov / var if var else 0.0


@dataclass(frozen=True)
class SideBySide:
    """The bare endpoint and the catalog, measured in turn (bench/run.py's _side_by_side)."""

    rounds: list[tuple[ClosedLoop, ClosedLoop]]  # (baseline, catalog), in order

    @property
    def share(self) -> float:
        """The median of the rounds' catalog / baseline ratios."""
        return statistics.median(c.rps / b.rps for b, c in self.rounds)

    @property
    def errors(self) -> int:
        return sum(b.errors + c.errors for b, c in self.rounds)


@dataclass(frozen=True)
class InTurn:
    """The LOOKUP and the direct REST back end at the LOOKUP's half-peak
    rate, both servers up on the server core and loaded in turn (bench/run.py's
    ``_lookup_in_turn``): the overhead target's figures."""

    row: str  # the gateway LOOKUP row whose rate and store these are
    rounds: list[tuple[OpenLoop, OpenLoop]]  # (gateway, direct), in order

    @property
    def gateway(self) -> tuple[float, float]:
        """p50 and p99 of every gateway request of every round."""
        return pooled([gateway for gateway, _ in self.rounds])

    @property
    def direct(self) -> tuple[float, float]:
        return pooled([direct for _, direct in self.rounds])

    @property
    def steal(self) -> tuple[float, float]:
        """The most the host took during any round, gateway and direct."""
        return (max(g.steal_percent for g, _ in self.rounds),
                max(d.steal_percent for _, d in self.rounds))  # fmt: skip

    @property
    def errors(self) -> int:
        return sum(g.errors + d.errors for g, d in self.rounds)


# Issue 6's targets.
CATALOG_SHARE = 0.70
OVERHEAD_P50_MS, OVERHEAD_P99_MS = 1.0, 5.0
FAN_OUT_MARGIN_MS = 2.0
SUBMISSIONS_PER_S = 1000.0
FLAT_MB_PER_10_MIN = 5.0


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}×" if base else "n/a"


def _table(results: list[Result]) -> list[str]:
    by_name = {r.name: r for r in results}
    rows = [
        "| scenario | req/s (closed) | × its baseline | p50 ms @ ½ peak | × | p99 ms @ ½ peak | × "
        "| sent/s | server CPU % (sat.) | CPU ms/req | CPU % @ ½ peak | host steal % @ ½ peak "
        "| peak RSS MB | errors | baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
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
            f"| {r.open_usage.cpu_percent:.0f} | {r.opened.steal_percent:.1f} "
            f"| {max(r.closed_usage.peak_rss_mb, r.open_usage.peak_rss_mb):.0f} "
            f"| {r.closed.errors + r.opened.errors} | {r.baseline} |"
        )
    return rows


def _plot(results: list[Result], out: Path) -> str | None:
    if not results:  # nothing to draw (an ``--only`` that matched no row)
        return None
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


def _status(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def _targets(
    results: list[Result],
    soak: Soak | None,
    side: SideBySide | None,
    in_turn: Sequence[InTurn] = (),
) -> list[str]:
    from bench.scenarios import (
        BASELINE_ROW,
        CATALOG_ROW,
        FAN_OUT_KINDS,
        FAN_OUT_ROW,
        LOOKUP_PG_ROW,
        LOOKUP_ROW,
        SUBMIT_PG_2_ROW,
        SUBMIT_PG_ROW,
        SUBMIT_ROW,
    )

    by_name = {r.name: r for r in results}
    baseline = by_name.get(BASELINE_ROW)
    rows = [
        "| target (issue 6) | measured | required | status |",
        "|---|---|---|---|",
    ]
    catalog = by_name.get(CATALOG_ROW)
    if side is not None:
        share = side.share
        each = ", ".join(f"{c.rps / b.rps:.0%}" for b, c in side.rounds)
        # The table's two rows too, measured minutes apart: how far drift moved them.
        apart = ""
        if catalog and baseline:
            one_shot = catalog.closed.rps / baseline.closed.rps
            apart = f"; the table's rows, minutes apart: {one_shot:.0%}"
        rows.append(
            f"| public catalog vs raw Starlette, same core, measured in turn "
            f"({len(side.rounds)} rounds) | median {share:.0%} (rounds: {each}; "
            f"{side.errors} errors{apart}) | ≥ {CATALOG_SHARE:.0%} "
            f"| {_status(share >= CATALOG_SHARE and not side.errors)} |"
        )
    elif catalog and baseline:
        share = catalog.closed.rps / baseline.closed.rps
        rows.append(
            f"| public catalog vs raw Starlette, same core | {share:.0%} "
            f"({catalog.closed.rps:,.0f} / {baseline.closed.rps:,.0f} req/s) "
            f"| ≥ {CATALOG_SHARE:.0%} | {_status(share >= CATALOG_SHARE)} |"
        )
    else:
        rows.append(f"| public catalog vs raw Starlette | — | ≥ {CATALOG_SHARE:.0%} | "
                    f"{_status(None)} |")  # fmt: skip
    direct = by_name.get("direct: REST connector")
    # Both stores: SQLite (the embedded default) and PostgreSQL (production).
    turns = {turn.row: turn for turn in in_turn}
    for name, store in ((LOOKUP_ROW, "SQLite"), (LOOKUP_PG_ROW, "PostgreSQL")):
        rows.append(_overhead(by_name.get(name), direct, store, turns.get(name)))
    fan = by_name.get(FAN_OUT_ROW)
    legs = [by_name.get(f"direct: {kind} connector") for kind in FAN_OUT_KINDS]
    paired = [leg.paired.get(FAN_OUT_ROW) for leg in legs if leg is not None]
    if fan and len(paired) == len(FAN_OUT_KINDS) and all(paired):
        slowest = max(p.p50_ms for p in paired if p is not None)
        slowest99 = max(p.p99_ms for p in paired if p is not None)
        rows.append(
            f"| fan-out to 3 agencies vs the slowest back end alone, at {fan.opened.rate:,.0f} "
            f"req/s | p50 {fan.opened.p50_ms:.1f} ms vs {slowest:.1f} ms "
            f"({fan.opened.p50_ms - slowest:+.1f}); p99 {fan.opened.p99_ms:.1f} vs "
            f"{slowest99:.1f} ms; host steal {fan.opened.steal_percent:.1f} % "
            f"| p50 ≤ slowest + {FAN_OUT_MARGIN_MS:g} ms "
            f"| {_status(fan.opened.p50_ms <= slowest + FAN_OUT_MARGIN_MS)} |"
        )
    else:
        rows.append(f"| fan-out vs slowest back end | — | ≤ slowest + {FAN_OUT_MARGIN_MS:g} ms "
                    f"| {_status(None)} |")  # fmt: skip
    # "On this 2-core machine": the two-process row is the target's; the
    # one-process and SQLite rows are reported beside it.
    submit_rows = ((SUBMIT_PG_2_ROW, SUBMISSIONS_PER_S), (SUBMIT_PG_ROW, None), (SUBMIT_ROW, None))
    for name, target in submit_rows:
        row = by_name.get(name)
        required = f"≥ {target:,.0f}/s, no error" if target else "reported"
        if row is None:
            rows.append(f"| durable submissions, {name} | — | {required} | {_status(None)} |")
            continue
        errors = row.closed.errors + row.opened.errors
        ok = row.closed.rps >= target and errors == 0 if target else None
        rows.append(
            f"| durable submissions (application + outbox row committed), {name} "
            f"| {row.closed.rps:,.0f}/s, {errors} errors | {required} "
            f"| {_status(ok) if target else 'reported'} |"
        )
    if soak is not None:
        slope = soak.slope_mb_per_min()
        rows.append(
            f"| memory over a {soak.usage.wall_seconds:.0f} s soak at ½ peak "
            f"| {slope * 10:+.1f} MB per 10 min (fit after the first minute) "
            f"| flat: within ±{FLAT_MB_PER_10_MIN:g} MB per 10 min "
            f"| {_status(abs(slope * 10) <= FLAT_MB_PER_10_MIN)} |"
        )
    else:
        rows.append(f"| memory flat over a soak | — | ±{FLAT_MB_PER_10_MIN:g} MB per 10 min "
                    f"| {_status(None)} |")  # fmt: skip
    for what in ("catalog", "APPLICATION submit"):
        one = by_name.get(f"scale-out: {what}, 1 process")
        two = by_name.get(f"scale-out: {what}, 2 processes")
        if one and two:
            rows.append(
                f"| scale-out, {what}: 2 processes vs 1 (PostgreSQL + Redis) "
                f"| {two.closed.rps:,.0f} vs {one.closed.rps:,.0f} req/s "
                f"({two.closed.rps / one.closed.rps:.2f}×) | tested | reported |"
            )
    return rows


def _overhead(lookup: Result | None, direct: Result | None, store: str, turn: InTurn | None) -> str:
    """The LOOKUP's latency over the direct REST back end's, both at the
    LOOKUP's half-peak rate: from the rounds in turn when they ran, else from
    the table's two rows."""
    pair = direct.paired.get(lookup.name) if lookup and direct else None
    apart = None
    if lookup is not None and pair is not None:
        apart = (lookup.opened.p50_ms - pair.p50_ms, lookup.opened.p99_ms - pair.p99_ms)
    if turn is not None:
        (g50, g99), (d50, d99), (g_steal, d_steal) = turn.gateway, turn.direct, turn.steal
        rate = turn.rounds[0][0].rate
        count = len(turn.rounds)
        how = f"{count} round{'s' if count != 1 else ''} in turn, {turn.errors} errors"
        if apart is not None:
            how += f"; the table's rows, minutes apart: p50 {apart[0]:+.1f}, p99 {apart[1]:+.1f}"
    elif lookup is not None and pair is not None:
        g50, g99, d50, d99 = lookup.opened.p50_ms, lookup.opened.p99_ms, pair.p50_ms, pair.p99_ms
        g_steal, d_steal, rate = lookup.opened.steal_percent, pair.steal_percent, lookup.opened.rate
        how = "the table's rows"
    else:
        return (
            f"| gateway overhead over direct (LOOKUP, {store}) | — | p50 ≤ {OVERHEAD_P50_MS:g} "
            f"ms, p99 ≤ {OVERHEAD_P99_MS:g} ms | {_status(None)} |"
        )
    p50, p99 = g50 - d50, g99 - d99
    errors = turn.errors if turn is not None else 0
    peak = "½ its peak, measured again before the rounds" if turn is not None else "½ its peak"
    return (
        f"| gateway overhead over the direct REST back end, LOOKUP on {store} at "
        f"{rate:,.0f} req/s ({peak}), both | p50 {p50:+.1f} ms, p99 {p99:+.1f} ms "
        f"({g50:.1f}/{g99:.1f} vs {d50:.1f}/{d99:.1f}; {how}; host steal {g_steal:.1f} % "
        f"vs {d_steal:.1f} %) | p50 ≤ {OVERHEAD_P50_MS:g} ms, p99 ≤ {OVERHEAD_P99_MS:g} ms "
        f"| {_status(p50 <= OVERHEAD_P50_MS and p99 <= OVERHEAD_P99_MS and not errors)} |"
    )


def _in_turn_section(in_turn: Sequence[InTurn]) -> list[str]:
    lines = [
        "## LOOKUP and its back end in turn",
        "",
        "The gateway and the direct REST server both up on the server core, each sent half "
        "the LOOKUP's peak (measured again just before the rounds) in turn, open loop, so "
        "that the machine's drift falls on both; the overhead targets pool every round's "
        "requests.",
        "",
        "| store | round | rate req/s | gateway p50 / p99 ms | direct p50 / p99 ms "
        "| host steal % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for turn in in_turn:
        for number, (gateway, direct) in enumerate(turn.rounds, 1):
            lines.append(
                f"| {turn.row} | {number} | {gateway.rate:,.0f} "
                f"| {gateway.p50_ms:.1f} / {gateway.p99_ms:.1f} "
                f"| {direct.p50_ms:.1f} / {direct.p99_ms:.1f} "
                f"| {max(gateway.steal_percent, direct.steal_percent):.1f} |"
            )
    return [*lines, ""]


def _machine_lines(machine: Sequence[MachineSpeed]) -> list[str]:
    if not machine:
        return []
    when = ("at the start of the run", "at its end")
    said = "; ".join(
        f"{speed.describe()} {when[min(index, 1)]}" for index, speed in enumerate(machine)
    )
    return [
        f"Python on the server core (bench/machine.py, a fixed unit of work): {said}. "
        "At ½ peak the server's core sleeps between requests, one reason why `CPU ms/req` "
        "there is above the saturated figure; compare machines through the back-to-back cost.",
        "",
    ]


def _side_section(side: SideBySide) -> list[str]:
    lines = [
        "## Catalog and baseline side by side",
        "",
        "Both servers up on the server core, loaded in turn (closed loop, wrk), so that the "
        "machine's drift falls on both; the target takes the median of the rounds' ratios.",
        "",
        "| round | baseline req/s | catalog req/s | catalog / baseline |",
        "|---:|---:|---:|---:|",
    ]
    for number, (base, catalog) in enumerate(side.rounds, 1):
        lines.append(f"| {number} | {base.rps:,.0f} | {catalog.rps:,.0f} | "
                     f"{catalog.rps / base.rps:.0%} |")  # fmt: skip
    return [*lines, ""]


def _soak_section(soak: Soak) -> list[str]:
    samples = soak.usage.samples
    if not samples:
        return []
    return [
        f"## Soak: {soak.usage.wall_seconds:.0f} s of the gateway mix at {soak.rate:,.0f} req/s",
        "",
        "Every gateway scenario in turn (" + ", ".join(soak.scenarios) + "), open loop at "
        "half the mix's closed-loop peak; RSS of the server sampled every "
        f"{soak.usage.wall_seconds / max(1, len(samples) - 1):.0f} s.",
        "",
        "| RSS start MB | at 1 min | end | max | slope after 1 min | sent/s | p50 / p99 ms | "
        "errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {samples[0]:.1f} | {_at(soak, 60):.1f} | {samples[-1]:.1f} | {max(samples):.1f} "
        f"| {soak.slope_mb_per_min():+.2f} MB/min | {soak.opened.achieved:,.0f} "
        f"| {soak.opened.p50_ms:.1f} / {soak.opened.p99_ms:.1f} | {soak.opened.errors} |",
        "",
    ]


def _at(soak: Soak, second: float) -> float:
    pairs = zip(soak.usage.times, soak.usage.samples, strict=True)
    return next((m for t, m in pairs if t >= second), soak.usage.samples[-1])


def _ways_section(ways: Sequence[Way]) -> list[str]:
    rounds = len(ways[0].with_us)
    lines = [
        "## The ways there, one at a time (in process)",
        "",
        "Each way against the same gateway without it, called over ASGI in this process "
        f"(no sockets), the two sides in {rounds} interleaved rounds; CPU per request, median "
        "of the rounds (bench/ways.py). Both sides are checked to answer alike first.",
        "",
        "| way | each request | CPU µs/req with | without | without ÷ with | rounds with | "
        "rounds without | errors |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    for way in ways:
        spread = [", ".join(f"{us:.0f}" for us in side) for side in (way.with_us, way.without_us)]
        lines.append(
            f"| {way.name} | {way.sent} | {way.with_median:,.0f} | {way.without_median:,.0f} | "
            f"{way.ratio:.2f}× | {spread[0]} | {spread[1]} | {way.errors} |"
        )
    return [*lines, "", *NOT_IN_PROCESS, ""]


NOT_IN_PROCESS = [
    "The other ways the issue names:",
    "- uvloop and httptools: they are the server, so they are measured over HTTP, in the "
    "table: `gateway: catalog [no response cache]` against `[no response cache, asyncio + h11]`.",
    "- Sync resolvers: the catalog's resolvers (`agencies`, `agency`, `services`, `service`) "
    "are plain functions, and no resolver that awaits nothing is a coroutine; there is no "
    "async twin to measure them against.",
    "- DataLoader batching per agency: measured above on a SQL agency, whose connector answers "
    "an operation's lookups in one statement. The REST, SOAP and file agencies' back ends "
    "take one request per call, so their lookups are sent one by one, as before.",
    "- Precompiled documents: the operator's allow-list is parsed and validated as the gateway "
    "starts (schema/precompile.py), into the caches of the row above; the row measures the "
    "only request that gains, the first of each document in a new process. Later requests cost "
    "what a cached text does (the APQ row).",
    "- Pooled database connections: the data-access row's own connection and the pools are "
    "long-lived in every configuration (docs/performance.md).",
]


def write_report(
    results: list[Result],
    out: Path,
    seconds: float,
    profile: list[str] | None,
    *,
    soak: Soak | None = None,
    side: SideBySide | None = None,
    notes: Sequence[str] = (),
    machine: Sequence[MachineSpeed] = (),
    in_turn: Sequence[InTurn] = (),
    ways: Sequence[Way] = (),
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
        *_machine_lines(machine),
        *_table(results),
        "",
    ]
    lines += ["## Targets", "", *_targets(results, soak, side, in_turn), ""]
    if side is not None:
        lines += _side_section(side)
    if in_turn:
        lines += _in_turn_section(in_turn)
    plot = _plot(results, out)
    if plot:
        lines += [f"![throughput and latency]({plot})", ""]
    if soak is not None:
        lines += _soak_section(soak)
    if ways:
        lines += _ways_section(ways)
    if notes:
        lines += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    if profile:
        lines += ["## Profile of the hot paths, in process (pyinstrument)", "", "```",
                  *profile, "```", ""]  # fmt: skip
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
