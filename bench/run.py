"""``make bench``: start everything pinned, measure every scenario, write the report.

Cores (this is a 2-core machine): the server under test alone on core 0;
this driver, wrk, the open-loop generator and the agency simulators on core 1
(the multi-process rows put their second server on core 1 too, see below).

    python -m bench.run [--seconds 10] [--only gateway,direct] [--out bench/results]
                        [--soak 600] [--postgres URL] [--redis URL] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from bench import scenarios
from bench.loadgen import Target, open_loop, wrk_together
from bench.machine import probe
from bench.measure import Usage, server_usage
from bench.report import InTurn, Result, SideBySide, Soak, write_report
from bench.ways import Way, ways_there

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, LOAD_CPU = 0, 1
# Overridable so a smoke test can run beside a real benchmark.
PORT = int(os.environ.get("BENCH_PORT", "18000"))
SIM_BASE_PORT = int(os.environ.get("BENCH_SIM_BASE_PORT", "18101"))
CITIZEN, SEEDED = "ТА85122304", "ЧБ02230518"
POSTGRES = "postgresql+asyncpg://127.0.0.1:5432/test"  # where the run's own database is made
REDIS = "redis://127.0.0.1:6379/0"
# Budgets no run reaches: the multi-process rows count every request in Redis
# as a deployment does, without ever refusing one.
UNREACHED_LIMITS = "anonymous=1000000000/minute,citizen=1000000000/minute"
SOAK_SAMPLE_SECONDS = 5.0
# The catalog-vs-baseline throughput ratio, measured alternately (see _side_by_side).
SIDE_BY_SIDE_ROUNDS = 9
IN_TURN_ROUNDS = 6


@dataclasses.dataclass(frozen=True)
class Server:
    """One server configuration; its scenarios are named ``<prefix><scenario><suffix>``."""

    name: str
    kind: str  # bench.serve KIND
    env: Mapping[str, str]
    processes: int = 1
    port: int = PORT  # of the first process; the others take the next ones


def _env(var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KHAALGA_VAR_DIR": str(var_dir),
        "KHAALGA_WORKER": "0",  # delivery would compete for the server's core
        "KHAALGA_RATE_LIMITS": "",  # no kind listed: nothing is limited
        "KHAALGA_LOG_FORMAT": "json",
        "BENCH_SIM_BASE_PORT": str(SIM_BASE_PORT),
    }


def _progress(message: str) -> None:
    # UTC, as database servers log: a row's tail can be set beside their
    # checkpoints and vacuums.
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC {message}", file=sys.stderr, flush=True)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


@contextlib.contextmanager
def _process(
    command: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def _servers(
    server: Server, env: Mapping[str, str], var_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``server.processes`` processes on ports ``server.port``, + 1...: the
    first on the server core, a second on the load core (there are only two)."""
    with contextlib.ExitStack() as stack:
        processes = []
        for index in range(server.processes):
            cpu = SERVER_CPU if index == 0 else LOAD_CPU
            command = ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.serve",
                       server.kind, str(server.port + index)]  # fmt: skip
            log = var_dir / f"{server.name}-{index}.log"
            processes.append(stack.enter_context(_process(command, {**env, **server.env}, log)))
        for index, process in enumerate(processes):
            _wait_port(server.port + index, process)
        yield processes


def _simulators(env: dict[str, str], var_dir: Path) -> subprocess.Popen[str]:
    command = [
        "taskset", "-c", str(LOAD_CPU), sys.executable, "-m", "legacy",
        "--workdir", str(var_dir / "legacy"), "--base-port", str(SIM_BASE_PORT),
        "--catalog", str(ROOT / "catalog"),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    for line in process.stdout:
        if "simulators ready" in line:
            return process
    raise RuntimeError("the simulators did not start")


def _token(env: dict[str, str], citizen: str) -> str:
    khaalga = str(Path(sys.executable).parent / "khaalga")
    out = subprocess.run([khaalga, "token", "--citizen", citizen], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


def _targets(scenario: scenarios.Scenario, processes: int) -> list[Target]:
    return [
        Target(PORT + i, scenario.path, scenario.body, scenario.headers) for i in range(processes)
    ]


@contextlib.contextmanager
def _usage(pids: Sequence[int]) -> Iterator[list[Usage]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(server_usage(pid)) for pid in pids]


def _total(usages: Sequence[Usage]) -> Usage:
    total = usages[0]
    for usage in usages[1:]:
        total = total.add(usage)
    return total


def _measure(
    scenario: scenarios.Scenario,
    pids: Sequence[int],
    seconds: float,
    connections: int,
    pair_rates: Mapping[str, float],
) -> Result:
    targets = _targets(scenario, len(pids))
    # Warm-up: caches, pools, lazy imports.
    wrk_together(targets, min(seconds, 2), connections, LOAD_CPU)
    with _usage(pids) as closed_usage:
        closed = wrk_together(targets, seconds, connections, LOAD_CPU)
    rate = max(1.0, closed.rps / 2)
    with _usage(pids) as open_usage:
        opened = open_loop(targets, rate, seconds)
    # The same back end at the rate its gateway counterpart was measured at,
    # so that the overhead targets compare latencies under the same load.
    paired = {
        name: open_loop(targets, pair_rate, seconds)
        for name, pair_rate in pair_rates.items()
        if name in scenario.pairs
    }
    return Result(
        scenario.name, scenario.baseline, closed, opened,
        _total(closed_usage), _total(open_usage), paired,
    )  # fmt: skip


def _fresh_postgres(admin_url: str) -> tuple[str, str] | None:
    """A new database for this run on ``admin_url``'s server: (its URL, its name),
    or None when PostgreSQL cannot be reached (the report then says so)."""
    from sqlalchemy.engine import make_url

    name = f"khaalga_bench_{uuid.uuid4().hex[:8]}"
    try:
        _outside_transaction(admin_url, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # any failure to reach it: the PostgreSQL rows are skipped
        print(f"PostgreSQL not measured: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, name


def _drop_postgres(admin_url: str, name: str) -> None:
    with contextlib.suppress(Exception):  # a leftover database is harmless
        _outside_transaction(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _outside_transaction(admin_url: str, statement: str) -> None:
    """CREATE and DROP DATABASE cannot run inside a transaction."""
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _committed(url: str) -> tuple[int, int]:
    """Applications and outbox rows in the run's PostgreSQL database."""
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.db.tables import Application, OutboxItem

    async def count() -> tuple[int, int]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                apps = await connection.scalar(select(func.count()).select_from(Application))
                outbox = await connection.scalar(select(func.count()).select_from(OutboxItem))
                return int(apps or 0), int(outbox or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--only", type=lambda text: tuple(part for part in text.split(",") if part),
        help="substrings of the scenario names to run, comma-separated",
    )  # fmt: skip
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-ways", action="store_true", help="skip the ways there, in process")
    parser.add_argument(
        "--soak", type=float, default=600.0,
        help="seconds of the memory soak at half the peak of the gateway mix (0: none)",
    )  # fmt: skip
    parser.add_argument("--postgres", default=POSTGRES, help="server for the run's own database")
    parser.add_argument("--redis", default=REDIS, help="Redis for the multi-process rows")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {LOAD_CPU})
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    notes: list[str] = []
    soak: Soak | None = None
    side: SideBySide | None = None
    in_turn: list[InTurn] = []
    profile: list[str] | None = None
    ways: list[Way] = []
    machine = [probe(SERVER_CPU)]  # before any server: the core to itself
    wants_postgres = any(_wanted(args, name) for name in scenarios.POSTGRES_ROWS)
    postgres = _fresh_postgres(args.postgres) if wants_postgres else None
    if wants_postgres and postgres is None:
        notes.append(f"PostgreSQL at {args.postgres} could not be reached: its rows are missing.")
    try:
        with tempfile.TemporaryDirectory(prefix="khaalga-bench-") as tmp:
            var_dir = Path(tmp)
            env = _env(var_dir)
            khaalga = str(Path(sys.executable).parent / "khaalga")
            subprocess.run([khaalga, "db", "upgrade"], env=env, check=True, capture_output=True)
            if postgres is not None:
                pg_env = {**env, "KHAALGA_DATABASE_URL": postgres[0]}
                subprocess.run([khaalga, "db", "upgrade"], env=pg_env, check=True,
                               capture_output=True)  # fmt: skip
            token, seeded = _token(env, CITIZEN), _token(env, SEEDED)
            simulators = _simulators(env, var_dir)
            try:
                servers = _servers_to_run(args, postgres, notes)
                results, plan = _run_all(args, servers, env, var_dir, token, seeded)
                if postgres is not None and any("PostgreSQL" in r.name for r in results):
                    apps, outbox = _committed(postgres[0])
                    answered = sum(
                        r.closed.requests + r.opened.sent - r.closed.errors - r.opened.errors
                        for r in results
                        if "submit" in r.name and r.name in scenarios.POSTGRES_ROWS
                    )
                    notes.append(
                        f"PostgreSQL database after the run: {apps:,} applications and "
                        f"{outbox:,} outbox rows, for {answered:,} measured submissions "
                        "answered 200 (plus warm-ups and checks): one of each per submission."
                    )
                side = _side_by_side(args, env, var_dir, plan)
                in_turn = _lookup_in_turn(args, env, var_dir, plan, results, postgres)
                if args.soak > 0 and _wanted(args, "soak"):
                    soak = _soak(args, env, var_dir, plan, results)
                if not args.no_profile:
                    from bench.profile import profile_hot_paths

                    profile = profile_hot_paths(var_dir, SIM_BASE_PORT, plan)
                if not args.no_ways:
                    ways = _ways(args, var_dir, plan)
            finally:
                simulators.terminate()
                simulators.wait(10)
    finally:
        if postgres is not None:
            _drop_postgres(args.postgres, postgres[1])
    machine.append(probe(SERVER_CPU))
    minutes = (time.monotonic() - started) / 60
    notes.append(f"The whole run took {minutes:.0f} min.")
    print(write_report(results, args.out, args.seconds, profile, soak=soak, side=side,
                       notes=notes, machine=machine, in_turn=in_turn,
                       ways=ways))  # fmt: skip


def _ways(args: argparse.Namespace, var_dir: Path, plan: list[scenarios.Scenario]) -> list[Way]:
    """In this process, moved to the server core (free by now) for the
    while, so that it does not share a core with the simulators it calls."""
    _progress("the ways there, one at a time, in process")
    os.sched_setaffinity(0, {SERVER_CPU})
    try:
        return ways_there(var_dir, SIM_BASE_PORT, plan, max(50, int(200 * args.seconds)))
    finally:
        os.sched_setaffinity(0, {LOAD_CPU})


def _wanted(args: argparse.Namespace, name: str) -> bool:
    return not args.only or any(part in name for part in args.only)


def _servers_to_run(
    args: argparse.Namespace, postgres: tuple[str, str] | None, notes: list[str]
) -> list[Server]:
    no_cache = {"KHAALGA_RESPONSE_CACHE_BYTES": "0"}
    servers = [
        Server("gateway", "gateway", {}),
        # The ways there, one at a time: the same gateway without the response
        # cache, then also without uvloop and httptools.
        Server("gateway-no-cache", "gateway", no_cache),
        Server("gateway-asyncio", "gateway", {**no_cache, "BENCH_SERVER_IO": "asyncio"}),
    ]
    if postgres is not None:
        pg = {"KHAALGA_DATABASE_URL": postgres[0]}
        servers.append(Server("gateway-pg", "gateway", pg))
        servers.append(Server("gateway-pg-2", "gateway", pg, processes=2))
        if _redis_reachable(args.redis):
            shared = {
                **pg,
                "KHAALGA_REDIS_URL": args.redis,
                "KHAALGA_REDIS_PREFIX": f"khaalga-bench-{uuid.uuid4().hex[:8]}",
                "KHAALGA_RATE_LIMITS": UNREACHED_LIMITS,
            }
            servers.append(Server("scale-1", "gateway", shared, processes=1))
            servers.append(Server("scale-2", "gateway", shared, processes=2))
        else:
            notes.append(f"Redis at {args.redis} could not be reached: no multi-process rows.")
    servers += [Server("baseline", "baseline", {}), Server("direct", "direct", {})]
    return servers


def _run_all(
    args: argparse.Namespace,
    servers: Sequence[Server],
    env: dict[str, str],
    var_dir: Path,
    token: str,
    seeded: str,
) -> tuple[list[Result], list[scenarios.Scenario]]:
    results: list[Result] = []
    plan: list[scenarios.Scenario] = []
    for server in servers:
        wanted = [
            s for s in plan
            if s.server == server.name and _wanted(args, s.name)
        ]  # fmt: skip
        if server.name != "gateway" and not wanted:
            continue  # the first gateway run builds the plan; others start only when needed
        with (
            _servers(server, env, var_dir) as processes,
            httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as http,
        ):
            if server.name == "gateway":
                scenarios.seed(http, seeded, SEEDED)
                plan = scenarios.build(http, token, CITIZEN, seeded)
            rates = {r.name: max(1.0, r.closed.rps / 2) for r in results}
            for scenario in plan:
                if scenario.server != server.name:
                    continue
                if not _wanted(args, scenario.name):
                    continue
                scenarios.check(http, scenario)
                _progress(f"measuring {scenario.name}")
                pids = [p.pid for p in processes]
                results.append(_measure(scenario, pids, args.seconds, args.connections, rates))
    return results, plan


def _side_by_side(
    args: argparse.Namespace,
    env: dict[str, str],
    var_dir: Path,
    plan: Sequence[scenarios.Scenario],
) -> SideBySide | None:
    """The public catalog and the bare Starlette endpoint, both servers up on
    the server core at once and loaded in turn, ``SIDE_BY_SIDE_ROUNDS`` times.

    Why: this machine's speed drifts by a third within minutes (the bare
    endpoint measured 9,200 and 16,800 req/s in one afternoon), so the two
    rows of the main table, minutes apart, can give any ratio. Alternating
    short runs puts both under the same drift; the report takes the median of
    the rounds' ratios."""
    by_name = {s.name: s for s in plan}
    wanted = (scenarios.BASELINE_ROW, scenarios.CATALOG_ROW)
    if not all(name in by_name and _wanted(args, name) for name in wanted):
        return None
    _progress("side by side: catalog and baseline in turn")
    pair = [Server("side-baseline", "baseline", {}, port=PORT + 20),
            Server("side-gateway", "gateway", {}, port=PORT + 21)]  # fmt: skip
    seconds = max(1.0, args.seconds / 3)
    with contextlib.ExitStack() as stack:
        for server in pair:
            stack.enter_context(_servers(server, env, var_dir))
        ports = [server.port for server in pair]
        targets = [_target_on(by_name[n], port) for port, n in zip(ports, wanted, strict=True)]
        for target in targets:  # warm-up, and the response cache filled
            wrk_together([target], 2, args.connections, LOAD_CPU)
        rounds = []
        for _ in range(SIDE_BY_SIDE_ROUNDS):
            base, catalog = (wrk_together([t], seconds, args.connections, LOAD_CPU)
                             for t in targets)  # fmt: skip
            rounds.append((base, catalog))
    return SideBySide(rounds)


def _lookup_in_turn(
    args: argparse.Namespace,
    env: dict[str, str],
    var_dir: Path,
    plan: Sequence[scenarios.Scenario],
    results: Sequence[Result],
    postgres: tuple[str, str] | None,
) -> list[InTurn]:
    """Each LOOKUP row and the direct REST back end, both servers up on the
    server core at once, sent half the LOOKUP's peak (measured again just
    before) in turn, ``IN_TURN_ROUNDS`` times, which of the two goes first
    alternating.

    Why: the overhead targets compare two latencies, and the table measures
    them minutes apart, on a machine whose speed for Python moved 1.7 times
    within one run (the probes of 10:42 UTC, 28 November). In turn, the
    drift falls on both."""
    by_name = {s.name: s for s in plan}
    measured = {r.name: r for r in results}
    stores: list[tuple[str, dict[str, str]]] = [(scenarios.LOOKUP_ROW, {})]
    if postgres is not None:
        stores.append((scenarios.LOOKUP_PG_ROW, {"KHAALGA_DATABASE_URL": postgres[0]}))
    direct_row = "direct: REST connector"
    wanted = [(row, store) for row, store in stores if row in measured and direct_row in measured]
    if not wanted or direct_row not in by_name:
        return []
    _progress("in turn: the LOOKUP and the direct REST back end")
    direct = Server("turn-direct", "direct", {}, port=PORT + 22)
    seconds = max(1.0, args.seconds * 2 / IN_TURN_ROUNDS)
    turns = []
    with _servers(direct, env, var_dir):
        direct_target = _target_on(by_name[direct_row], direct.port)
        wrk_together([direct_target], 2, args.connections, LOAD_CPU)
        for index, (row, store) in enumerate(wanted):
            gateway = Server(f"turn-gateway-{index}", "gateway", store, port=PORT + 23)
            with _servers(gateway, env, var_dir):
                gateway_target = _target_on(by_name[row], gateway.port)
                wrk_together([gateway_target], 2, args.connections, LOAD_CPU)
                # Half the peak as it is now, not as the table's row found it
                # minutes ago: at 10:53 UTC on 28 November the two LOOKUP rows,
                # 90 s apart, peaked at 314 and 628 req/s.
                peak = wrk_together([gateway_target], args.seconds, args.connections, LOAD_CPU)
                rate = max(1.0, peak.rps / 2)
                rounds = []
                for number in range(IN_TURN_ROUNDS):
                    if number % 2 == 0:
                        ours = open_loop(gateway_target, rate, seconds)
                        theirs = open_loop(direct_target, rate, seconds)
                    else:
                        theirs = open_loop(direct_target, rate, seconds)
                        ours = open_loop(gateway_target, rate, seconds)
                    rounds.append((ours, theirs))
                turns.append(InTurn(row, rounds))
    return turns


def _target_on(scenario: scenarios.Scenario, port: int) -> Target:
    return Target(port, scenario.path, scenario.body, scenario.headers)


def _soak(
    args: argparse.Namespace,
    env: dict[str, str],
    var_dir: Path,
    plan: Sequence[scenarios.Scenario],
    results: Sequence[Result],
) -> Soak | None:
    """The gateway mix (every gateway scenario in turn) at half its peak for
    ``--soak`` seconds, RSS sampled every few seconds."""
    by_name = {r.name: r for r in results}
    mix = [s for s in plan if s.server == "gateway" and s.name in by_name]
    if not mix:
        return None
    # Half the mix's closed-loop throughput: each request takes 1/rps of a second.
    rate = 0.5 / (sum(1 / max(1.0, by_name[s.name].closed.rps) for s in mix) / len(mix))
    server = Server("soak", "gateway", {})
    _progress(f"soak: {args.soak:.0f} s at {rate:.0f} req/s")
    with _servers(server, env, var_dir) as processes:
        targets = [t for s in mix for t in _targets(s, 1)]
        wrk_together(targets[:1], 2, args.connections, LOAD_CPU)
        with server_usage(processes[0].pid, interval=SOAK_SAMPLE_SECONDS) as usage:
            opened = open_loop(targets, rate, args.soak)
    return Soak([s.name for s in mix], rate, opened, usage)


if __name__ == "__main__":
    main()
