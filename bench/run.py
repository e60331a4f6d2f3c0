"""``make bench``: start everything pinned, measure every scenario, write the report.

Cores (this is a 2-core machine): the server under test alone on core 0;
this driver, wrk, the open-loop generator and the agency simulators on core 1.

    python -m bench.run [--seconds 10] [--only gateway] [--out bench/results]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import scenarios
from bench.loadgen import Target, open_loop, wrk
from bench.measure import server_usage
from bench.report import Result, write_report

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, LOAD_CPU = 0, 1
# Overridable so a smoke test can run beside a real benchmark.
PORT = int(os.environ.get("BENCH_PORT", "18000"))
SIM_BASE_PORT = int(os.environ.get("BENCH_SIM_BASE_PORT", "18101"))
CITIZEN, SEEDED = "ТА85122304", "ЧБ02230518"


def _env(var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KHAALGA_VAR_DIR": str(var_dir),
        "KHAALGA_WORKER": "0",  # delivery would compete for the server's core
        "KHAALGA_RATE_LIMITS": "",  # no kind listed: nothing is limited
        "BENCH_SIM_BASE_PORT": str(SIM_BASE_PORT),
    }


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
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


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


def _measure(scenario: scenarios.Scenario, pid: int, seconds: float, connections: int) -> Result:
    target = Target(PORT, scenario.path, scenario.body, scenario.headers)
    wrk(
        target, min(seconds, 2), connections, LOAD_CPU
    )  # warm-up: caches, pools, JIT-free but lazy imports
    with server_usage(pid) as closed_usage:
        closed = wrk(target, seconds, connections, LOAD_CPU)
    rate = max(1.0, closed.rps / 2)
    with server_usage(pid) as open_usage:
        opened = open_loop(target, rate, seconds)
    return Result(scenario.name, scenario.baseline, closed, opened, closed_usage, open_usage)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--only", help="substring of the scenario names to run")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {LOAD_CPU})
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="khaalga-bench-") as tmp:
        var_dir = Path(tmp)
        env = _env(var_dir)
        khaalga = str(Path(sys.executable).parent / "khaalga")
        subprocess.run([khaalga, "db", "upgrade"], env=env, check=True, capture_output=True)
        token, seeded = _token(env, CITIZEN), _token(env, SEEDED)
        simulators = _simulators(env, var_dir)
        try:
            results = _run_all(args, env, var_dir, token, seeded)
        finally:
            simulators.terminate()
            simulators.wait(10)
    profile = None
    if not args.no_profile:
        from bench.profile import profile_catalog

        profile = profile_catalog()
    print(write_report(results, args.out, args.seconds, profile))


def _run_all(
    args: argparse.Namespace, env: dict[str, str], var_dir: Path, token: str, seeded: str
) -> list[Result]:
    results: list[Result] = []
    plan: list[scenarios.Scenario] = []
    for server in ("gateway", "baseline", "direct"):
        command = ["taskset", "-c", str(SERVER_CPU), sys.executable, "-m", "bench.serve",
                   server, str(PORT)]  # fmt: skip
        with _process(command, env, var_dir / f"{server}.log") as process:
            _wait_port(PORT, process)
            with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as http:
                if server == "gateway":
                    scenarios.seed(http, seeded, SEEDED)
                    plan = scenarios.build(http, token, CITIZEN, seeded)
                for scenario in plan:
                    if scenario.server != server:
                        continue
                    if args.only and args.only not in scenario.name:
                        continue
                    scenarios.check(http, scenario)
                    print(f"measuring {scenario.name}", file=sys.stderr, flush=True)
                    results.append(_measure(scenario, process.pid, args.seconds, args.connections))
    return results


if __name__ == "__main__":
    main()
