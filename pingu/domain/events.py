"""Inputs of the core: what the outside world tells it happened."""

from __future__ import annotations

from dataclasses import dataclass

from pingu.domain.commands import (
    ScriptKind,
)
from pingu.domain.model import Family, RoundResult, Route


@dataclass(frozen=True)
class RouteAppeared:
    """A route was added or changed in the kernel. `replaced`: it was added with
    NLM_F_REPLACE and took the place of the route of the same slot (table, tos, metric),
    of which the kernel sends no RTM_DELROUTE."""

    route: Route
    replaced: bool = False


@dataclass(frozen=True)
class RouteVanished:
    """A route was deleted from the kernel."""

    route: Route


@dataclass(frozen=True)
class LinkChanged:
    """A link appeared or changed: carrier, admin state, type, addresses (IPv4; IPv6: the
    preferred global one, neither tentative nor deprecated)."""

    ifindex: int
    ifname: str
    carrier: bool
    admin_up: bool = True
    point_to_point: bool = False
    address: str | None = None
    address6: str | None = None


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
    family: Family = Family.IPV4


@dataclass(frozen=True)
class RouterAdvertised:
    """A router advertisement arrived on a link: `router` (its link-local source) offers
    itself as default router for `lifetime_s` seconds; 0 withdraws it. The kernel adds no
    route for a withdrawal when its route is already gone (pingu deleted it), so pingu
    hears the advertisements themselves."""

    ifindex: int
    router: str
    lifetime_s: int


@dataclass(frozen=True)
class TimerFired:
    """The clock reached a deadline the core asked for (or any later moment)."""


@dataclass(frozen=True)
class ScriptFinished:
    """A script started by the core has ended (exit status None = killed at its timeout)."""

    uplink: str
    script: str
    returncode: int | None
    kind: ScriptKind = ScriptKind.RESET


@dataclass(frozen=True)
class FlowsEnded:
    """The shell ended the flows an EndFlows asked about: how many conntrack entries it
    deleted and TCP connections it destroyed (`error`: what failed, if anything did)."""

    uplink: str
    family: Family
    conntrack: int
    sockets: int
    error: str | None = None


@dataclass(frozen=True)
class RouteInstalled:
    """The shell's report that a route the core asked for (InstallOwnRoute, RestoreCapturedRoute) is
    in the table now: what waited for it (a captured route's deletion, the old route of a
    new gateway) can go."""

    route: Route


@dataclass(frozen=True)
class RouteRefused:
    """The kernel refused to install a route the core asked for (e.g. gateway not on-link)."""

    route: Route
    reason: str


@dataclass(frozen=True)
class TableSnapshot:
    """Every link and every default route of table main, read in one go: at start-up, after
    an overflow of the event stream, and periodically. The core compares it with what it
    believes and repairs the differences (`initial`: the first one, nothing to repair)."""

    links: tuple[LinkChanged, ...]
    routes: tuple[Route, ...]
    initial: bool = False


Event = (
    RouteAppeared
    | RouteVanished
    | LinkChanged
    | LinkVanished
    | ProbeFinished
    | RouterAdvertised
    | TimerFired
    | ScriptFinished
    | FlowsEnded
    | RouteInstalled
    | RouteRefused
    | TableSnapshot
)
