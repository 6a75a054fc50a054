"""Inputs of the core: what the outside world tells it happened."""

from __future__ import annotations

from dataclasses import dataclass

from pingu.domain.model import RoundResult, Route


@dataclass(frozen=True)
class RouteAppeared:
    """A route was added or changed in the kernel (or found by a dump)."""

    route: Route


@dataclass(frozen=True)
class RouteVanished:
    """A route was deleted from the kernel."""

    route: Route


@dataclass(frozen=True)
class LinkChanged:
    """A link appeared or changed: carrier, admin state, type, IPv4 address."""

    ifindex: int
    ifname: str
    carrier: bool
    admin_up: bool = True
    point_to_point: bool = False
    address: str | None = None


@dataclass(frozen=True)
class LinkVanished:
    """A link was deleted (a modem hung up, a USB dongle was pulled)."""

    ifindex: int
    ifname: str


@dataclass(frozen=True)
class ProbeFinished:
    """A round of echoes on one uplink has ended; `round_id` is its StartProbe's."""

    uplink: str
    result: RoundResult
    round_id: int = 0


@dataclass(frozen=True)
class TimerFired:
    """The clock reached a deadline the core asked for (or any later moment)."""


@dataclass(frozen=True)
class ScriptFinished:
    """A script started by the core has ended (exit status None = killed at its timeout)."""

    uplink: str
    script: str
    returncode: int | None
    kind: str = "reset"


@dataclass(frozen=True)
class RouteRefused:
    """The kernel refused to install one of pingu's routes (e.g. gateway not on-link)."""

    route: Route
    reason: str


Event = (
    RouteAppeared
    | RouteVanished
    | LinkChanged
    | LinkVanished
    | ProbeFinished
    | TimerFired
    | ScriptFinished
    | RouteRefused
)
