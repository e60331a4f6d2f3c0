"""Run every simulated agency back end until SIGINT or SIGTERM.

python -m legacy --workdir var/legacy --base-port 8101 --review-seconds 3

Test hook: ``--faults FILE`` makes the process poll FILE (JSON, e.g.
``{"GOV": {"delay": 2.5}, "ENV": {"down": true}}``) and set each agency's
``Faults`` from it, an agency left out back to no fault; a missing or
unreadable file changes nothing. It lets a test that runs the simulators as a
separate process make an agency slow or down; nothing else uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from gateway.catalog.loader import CatalogError, load_catalog
from gateway.heap import settle_heap
from gateway.settings import ROOT
from legacy.base import Simulator
from legacy.control import Faults
from legacy.topology import DEFAULT_BASE_PORT, build_simulators, default_ports

_FAULT_POLL = 0.1


def _read_faults(path: Path) -> dict[str, Faults] | None:
    try:
        raw = json.loads(path.read_text())
        return {
            str(code): Faults(
                delay=float(spec.get("delay", 0.0)),
                down=bool(spec.get("down", False)),
                garbage=bool(spec.get("garbage", False)),
            )
            for code, spec in raw.items()
        }
    except (OSError, ValueError, TypeError, AttributeError):
        return None


async def _follow_faults(path: Path, simulators: list[Simulator]) -> None:
    """The ``--faults`` test hook: apply the file's faults whenever it changes."""
    applied: dict[str, Faults] | None = None
    while True:
        wanted = await asyncio.to_thread(_read_faults, path)
        if wanted is not None and wanted != applied:
            for simulator in simulators:
                faults = wanted.get(simulator.agency.code, Faults())
                if faults != simulator.faults:
                    simulator.faults = faults
                    await simulator.apply_faults()
            applied = wanted
        await asyncio.sleep(_FAULT_POLL)


async def serve(
    workdir: Path,
    base_port: int,
    review_seconds: float,
    catalog_dir: Path,
    faults_file: Path | None = None,
) -> None:
    catalog = load_catalog(catalog_dir)
    simulators = build_simulators(
        catalog, workdir, default_ports(catalog, base_port), review_seconds
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = []
    try:
        for simulator in simulators:
            await simulator.start()
            started.append(simulator)
        follower = (
            asyncio.create_task(_follow_faults(faults_file, started)) if faults_file else None
        )
        # As the gateway's server does: under the bench's load the collector
        # walked everything start-up built (spyne, lxml, 13 agencies) about
        # once a second, pausing every agency 45-68 ms each time, which put
        # ~100 ms into each back end's p99 (docs/performance-history.md).
        settle_heap()
        print(f"legacy: {len(started)} agency simulators ready", flush=True)
        await stop.wait()
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    finally:
        for simulator in reversed(started):
            await simulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m legacy")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "legacy")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    parser.add_argument("--review-seconds", type=float, default=3.0)
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog")
    parser.add_argument("--faults", type=Path, default=None, help="test hook: a JSON fault file")
    args = parser.parse_args()
    try:
        asyncio.run(
            serve(args.workdir, args.base_port, args.review_seconds, args.catalog, args.faults)
        )
    except CatalogError as exc:
        sys.exit(f"catalog is broken:\n{exc}")


if __name__ == "__main__":
    main()
