"""The validated, frozen configuration model, and the rules that build it from parsed JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class InitialState(Enum):
    """How an uplink starts before its first verdict: trusted (`up`) or not (`down`, seed)."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class UplinkConfig:
    """Settings of one uplink (a configured interface). Times: seconds unless named _ms."""

    name: str
    metric: int
    targets: tuple[str, ...]
    min_hosts_up: int = 1
    count: int = 5
    max_lost: int = 2
    max_delay_ms: float = 1000.0
    period: float = 5.0
    interval_ms: int = 500
    timeout_ms: int = 1000
    rise: int = 1
    fall: int = 1
    reset_script: str | None = None
    reset_script_grace_period: float = 600.0


@dataclass(frozen=True)
class Config:
    """The whole daemon configuration; `uplinks` keeps the file's order."""

    proto: int
    uplinks: tuple[UplinkConfig, ...]
    initial_state: InitialState = InitialState.UP
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def uplink(self, name: str) -> UplinkConfig | None:
        """The settings of uplink `name`, or None when it is not configured."""
        for uplink in self.uplinks:
            if uplink.name == name:
                return uplink
        return None
