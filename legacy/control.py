"""Fault switches every simulator honours, so tests can make an agency slow,
down or broken without touching its code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Faults:
    delay: float = 0.0  # seconds added before every answer
    down: bool = False  # refuse to serve (503, SOAP server fault, DB locked, batch stopped)
    garbage: bool = False  # answer with a body the protocol cannot parse

    def reset(self) -> None:
        self.delay, self.down, self.garbage = 0.0, False, False
