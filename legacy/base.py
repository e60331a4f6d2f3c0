"""What every simulated agency back end offers the runner and the tests."""

from __future__ import annotations

import abc
from pathlib import Path

from connectors.config import BackendEndpoint
from gateway.catalog.model import Agency
from legacy.control import Faults
from legacy.records import Filing


class Simulator(abc.ABC):
    """One agency's legacy system on loopback, speaking its real protocol.

    ``workdir`` is the simulator's own folder (its records, database or
    exchange folders live there, so they survive a restart); ``port`` is
    used by network kinds and ignored by others.
    """

    def __init__(
        self, agency: Agency, workdir: Path, port: int, review_seconds: float = 3.0
    ) -> None:
        self.agency = agency
        self.workdir = workdir
        self.port = port
        self.review_seconds = review_seconds
        self.faults = Faults()

    @classmethod
    @abc.abstractmethod
    def endpoint_for(cls, agency: Agency, workdir: Path, port: int) -> BackendEndpoint:
        """The endpoint the gateway uses, computable without starting anything."""

    def endpoint(self) -> BackendEndpoint:
        return self.endpoint_for(self.agency, self.workdir, self.port)

    @abc.abstractmethod
    async def start(self) -> None:
        """Serve until ``stop``; return once it accepts requests."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop serving and release files and sockets."""

    async def apply_faults(self) -> None:  # noqa: B027 - most kinds read faults per request
        """Make changed ``faults`` take effect now (kinds that apply them in a
        background job override this)."""

    @abc.abstractmethod
    def filings(self) -> list[Filing]:
        """Every application the agency has on record, once each."""
