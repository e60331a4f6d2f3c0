"""Load generators.

Closed loop (saturation): ``wrk`` from Debian, a Lua script per scenario for
the POST body and headers. Open loop (latency at a fixed rate): wrk cannot
hold a rate and wrk2 is not packaged, so a small asyncio generator sends on a
fixed schedule over raw keep-alive sockets and measures each latency from
the request's *intended* start, so a stalled server is not hidden by the
generator waiting for it (coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from bench.measure import host_steal


@dataclass(frozen=True)
class Target:
    port: int
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class ClosedLoop:
    rps: float
    requests: int
    errors: int  # socket errors and non-2xx answers


@dataclass(frozen=True)
class OpenLoop:
    rate: float
    achieved: float  # what the generator really sent per second; below rate, it was the limit
    sent: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    steal_percent: float = 0.0  # of all cores' time, taken by the host during the run
    # Every request's, in ms, so that runs taken in turn can be pooled (``pooled``).
    latencies_ms: tuple[float, ...] = field(default=(), repr=False)


def percentiles(latencies_ms: Sequence[float]) -> tuple[float, float]:
    """p50 and p99."""
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return cuts[49], cuts[98]


def pooled(runs: Sequence[OpenLoop]) -> tuple[float, float]:
    """p50 and p99 of every request of ``runs`` taken together."""
    return percentiles([latency for run in runs for latency in run.latencies_ms])


def _lua(target: Target) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(target.body.decode())}"]
    for name, value in {**target.headers, "Content-Type": "application/json"}.items():
        # The spaces matter: "[[" would open a Lua long string.
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    return "\n".join(lines) + "\n"


def _lua_string(text: str) -> str:
    """A Lua long string: no escapes to get wrong, UTF-8 passes as bytes."""
    if "]==]" in text:
        raise ValueError("cannot quote this for Lua")
    return "[==[" + text + "]==]"


def wrk(target: Target, seconds: float, connections: int, cpu: int) -> ClosedLoop:
    return wrk_together([target], seconds, connections, cpu)


def wrk_together(
    targets: Sequence[Target], seconds: float, connections: int, cpu: int
) -> ClosedLoop:
    """One wrk per target (several servers), all at once, ``connections`` each; summed."""
    scripts, processes = [], []
    try:
        for target in targets:
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
                script.write(_lua(target))
            scripts.append(Path(script.name))
            command = [
                "taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}",
                f"-d{max(1, round(seconds))}s", "-s", script.name,
                f"http://127.0.0.1:{target.port}{target.path}",
            ]  # fmt: skip
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
        outputs = []
        for process in processes:
            out, _ = process.communicate()
            if process.returncode:
                raise subprocess.CalledProcessError(process.returncode, process.args, out)
            outputs.append(out)
    finally:
        for path in scripts:
            path.unlink()
    results = [_parse_wrk(output) for output in outputs]
    return ClosedLoop(
        rps=sum(r.rps for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def _parse_wrk(output: str) -> ClosedLoop:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return ClosedLoop(rps=rps, requests=total, errors=errors)


def _request(target: Target) -> bytes:
    head = [
        f"POST {target.path} HTTP/1.1",
        f"Host: 127.0.0.1:{target.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(target.body)}",
        *(f"{k}: {v}" for k, v in target.headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + target.body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if length is None:
        raise RuntimeError("the benchmark servers always send Content-Length")
    await reader.readexactly(int(length.group(1)))
    return status


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open_loop(targets: Sequence[Target], rate: float, seconds: float, pool: int) -> OpenLoop:
    """Requests go to ``targets`` in turn (a mix, or several servers)."""
    requests = [_request(target) for target in targets]
    idle: dict[int, asyncio.Queue[Connection]] = {}
    for port in {target.port for target in targets}:
        idle[port] = asyncio.Queue()
        for _ in range(pool):
            idle[port].put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0

    async def one(intended: float, index: int) -> None:
        nonlocal errors
        port = targets[index].port
        connection = await idle[port].get()
        try:
            status = await _exchange(*connection, requests[index])
            if status >= 300:
                errors += 1
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            errors += 1
            connection = await asyncio.open_connection("127.0.0.1", port)
        finally:
            idle[port].put_nowait(connection)
        latencies.append(time.perf_counter() - intended)

    count = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for index in range(count):
        intended = start + index / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(intended, index % len(targets))))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for queue in idle.values():
        while not queue.empty():
            queue.get_nowait()[1].close()
    latencies_ms = tuple(latency * 1000 for latency in latencies)
    p50, p99 = percentiles(latencies_ms)
    return OpenLoop(
        rate=rate,
        achieved=count / elapsed,
        sent=count,
        p50_ms=p50,
        p99_ms=p99,
        max_ms=max(latencies_ms),
        errors=errors,
        latencies_ms=latencies_ms,
    )


def open_loop(
    target: Target | Sequence[Target], rate: float, seconds: float, pool: int = 64
) -> OpenLoop:
    targets = [target] if isinstance(target, Target) else list(target)
    with _collector_paused(), host_steal() as steal:
        opened = asyncio.run(_open_loop(targets, rate, seconds, pool))
    return replace(opened, steal_percent=steal.percent)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The generator's own cyclic garbage collector is off while it sends.

    A full collection walks every object the run holds (its tasks above all)
    and stops the generator meanwhile: 42 ms at 1,000 req/s after 9.8 s of a
    10 s run. Every request due during the pause was sent late and charged
    the pause as latency, on whichever row the collection fell: tens of
    requests, enough to decide a p99. Reference counting still frees what
    each request leaves; the cycles left over are collected once the run is
    over, before the next one starts."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect()


def graphql_body(query: str, variables: dict[str, object] | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables or {}})
