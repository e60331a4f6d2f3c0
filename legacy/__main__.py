"""Run every simulated agency back end until SIGINT or SIGTERM.

python -m legacy --workdir var/legacy --base-port 8101 --review-seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from gateway.catalog.loader import CatalogError, load_catalog
from gateway.settings import ROOT
from legacy.topology import DEFAULT_BASE_PORT, build_simulators, default_ports


async def serve(workdir: Path, base_port: int, review_seconds: float, catalog_dir: Path) -> None:
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
        print(f"legacy: {len(started)} agency simulators ready", flush=True)
        await stop.wait()
    finally:
        for simulator in reversed(started):
            await simulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m legacy")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "legacy")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    parser.add_argument("--review-seconds", type=float, default=3.0)
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.workdir, args.base_port, args.review_seconds, args.catalog))
    except CatalogError as exc:
        sys.exit(f"catalog is broken:\n{exc}")


if __name__ == "__main__":
    main()
