"""The validated, frozen configuration: what the rest of pingu reads.

Each field is a setting of `settings.py` (its default comes from there, written once), but
for the uplink's name and the configuration's warnings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pingu.domain.config.choices import InitialState, OnExit, WhenAllDown
from pingu.domain.config.settings import default
from pingu.domain.model import Family


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
    flush_conntrack: bool = default("flush_conntrack")
    kill_sockets: bool = default("kill_sockets")
    flow_quiet_period: float = default("flow_quiet_period")

    def targets_of(self, family: Family) -> tuple[str, ...]:
        """The probe targets of one family, in the file's order."""
        return tuple(t for t in self.targets if target_family(t) is family)

    @property
    def families(self) -> tuple[Family, ...]:
        """The families the uplink is managed in: those it has targets of (IPv4 first)."""
        return tuple(f for f in Family if self.targets_of(f))

    def quorum(self, family: Family) -> int:
        """How many of the family's targets must pass: `min_hosts_up`, capped at their
        number (a dual-stack uplink may have more targets of one family than the other)."""
        return min(self.min_hosts_up, len(self.targets_of(family)))


def target_family(target: str) -> Family:
    """The family of a (validated) probe target."""
    return Family.IPV6 if ipaddress.ip_address(target).version == 6 else Family.IPV4


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
