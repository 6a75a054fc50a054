"""What a figure hands back: table rows for RESULTS.md and the raw numbers for the JSON."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    measured: str
    target: str
    command: str
    reading: str
    met: bool | None = None  # None: no target, or not comparable


@dataclass
class Result:
    """One figure's outcome."""

    name: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    measured: dict[str, Any] | None = None  # kept from an earlier run: its date, commit, mode

    @classmethod
    def kept(cls, name: str, stored: dict[str, Any], measured: dict[str, Any]) -> Result:
        """A figure as an earlier run's results.json holds it."""
        rows = [Row(**row) for row in stored.get("rows", [])]
        return cls(
            name,
            rows,
            stored.get("raw", {}),
            stored.get("seconds", 0.0),
            stored.get("error"),
            stored.get("measured") or measured,
        )


@dataclass
class Context:
    """Settings shared by every figure of one run."""

    quick: bool
    seed: int
    workdir: Path
    python: str

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def pick_s(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}/{name}")

    def command(self, figure: str) -> str:
        quick = " --quick" if self.quick else ""
        return f"nox -s bench -- --only {figure}{quick}"


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, best, median, p90, p99 and worst (nearest-rank percentiles)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "best": ordered[0],
        "median": statistics.median(ordered),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "worst": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def millis(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"


def mb(kb: float | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"
