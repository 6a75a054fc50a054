"""The validated, frozen configuration: what the rest of pingu reads.

Each field is a setting of `settings.py` (its default comes from there, written once), but
for the uplink's name and the configuration's warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pingu.domain.config.choices import InitialState, OnExit, WhenAllDown
from pingu.domain.config.settings import default


@dataclass(frozen=True)
class UplinkConfig:
    """Settings of one uplink (a configured interface). Times: seconds unless named _ms."""

    name: str
    metric: int
    targets: tuple[str, ...]
    min_hosts_up: int = default("min_hosts_up")
    count: int = default("count")
    max_lost: int = default("max_lost")
    max_delay_ms: float = default("max_delay")
    period: float = default("period")
    interval_ms: int = default("interval")
    timeout_ms: int = default("timeout")
    rise: int = default("rise")
    fall: int = default("fall")
    reset_script: str | None = default("reset_script")
    reset_script_grace_period: float = default("reset_script_grace_period")
    up_script: str | None = default("up_script")
    down_script: str | None = default("down_script")


@dataclass(frozen=True)
class Config:
    """The whole daemon configuration; `uplinks` keeps the file's order."""

    proto: int
    uplinks: tuple[UplinkConfig, ...]
    initial_state: InitialState = default("initial_state")
    on_exit: OnExit = default("on_exit")
    when_all_down: WhenAllDown = default("when_all_down")
    state_file: str | None = default("state_file")
    script_timeout: float = default("script_timeout")
    control_socket: str | None = default("control_socket")
    control_group: str | None = default("control_group")
    metrics: tuple[str, int] | None = default("metrics")
    gateways_file: str | None = default("gateways_file")
    table_check_interval: float | None = default("table_check_interval")
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def uplink(self, name: str) -> UplinkConfig | None:
        """The settings of uplink `name`, or None when it is not configured."""
        for uplink in self.uplinks:
            if uplink.name == name:
                return uplink
        return None
