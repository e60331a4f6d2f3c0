"""The open-loop generator never stops for its own garbage collection while
it sends: a pause there is charged to the server as latency (bench/loadgen.py)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from bench import loadgen
from bench.loadgen import OpenLoop, Target, open_loop
from bench.run import _wait_port
from gateway.settings import ROOT
from tests.support.processes import free_port_block


@pytest.fixture
def bare_endpoint() -> Iterator[int]:
    """The harness's own baseline server, in a process of its own: its
    allocations are not this process's."""
    port = free_port_block(1)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", "baseline", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port, server)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def test_no_collection_runs_while_the_generator_sends(
    bare_endpoint: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    sending = False
    during: list[int] = []  # the generation of each collection started while sending
    sender = loadgen._open_loop

    async def watched(targets: Sequence[Target], *args: Any) -> OpenLoop:
        nonlocal sending
        sending = True
        try:
            return await sender(targets, *args)
        finally:
            sending = False

    def started(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and sending:
            during.append(info["generation"])

    monkeypatch.setattr(loadgen, "_open_loop", watched)
    thresholds = gc.get_threshold()
    # So low that a collector left on would run many times in any run.
    gc.set_threshold(10, 1000, 1000)
    gc.callbacks.append(started)
    try:
        result = open_loop(Target(bare_endpoint, "/json", b'{"query": "{ x }"}', {}), 200, 0.5)
    finally:
        gc.callbacks.remove(started)
        gc.set_threshold(*thresholds)

    assert result.sent == 100 and result.errors == 0
    assert during == []
    assert gc.isenabled()
