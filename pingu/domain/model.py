"""Value objects shared by events and commands: routes, links and the results of a round."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

MAIN_TABLE = 254
SCOPE_UNIVERSE = 0
SCOPE_LINK = 253


class Family(Enum):
    """An address family; pingu judges and routes each on its own."""

    IPV4 = 4
    IPV6 = 6

    @property
    def label(self) -> str:
        """`ipv4` or `ipv6`, as status, metrics, logs and scripts say it."""
        return f"ipv{self.value}"


@dataclass(frozen=True)
class RouteAttributes:
    """What a route carries besides its key and gateway, and what a DHCP/PPP set-up relies
    on: the preferred source address, `onlink` (a gateway outside the uplink's subnet, as on
    cloud VMs with a /32), and the route metrics such as `mtu`, `advmss` or `initcwnd`
    (sorted (name, value) pairs). pingu's own route copies them from the captured one."""

    prefsrc: str | None = None
    onlink: bool = False
    metrics: tuple[tuple[str, int], ...] = ()
    pref: int | None = None  # IPv6: the router preference it was advertised with (RTA_PREF)

    def describe(self) -> str:
        words = [f"src {self.prefsrc}"] if self.prefsrc else []
        words += [f"{name} {value}" for name, value in self.metrics]
        words += ["onlink"] if self.onlink else []
        words += [f"pref {_PREFERENCES.get(self.pref, self.pref)}"] if self.pref is not None else []
        return " ".join(words)


_PREFERENCES = {0: "medium", 1: "high", 3: "low"}


NO_ATTRIBUTES = RouteAttributes()


@dataclass(frozen=True)
class Route:
    """A route as pingu sees it; `gateway` None means a gateway-less (scope link) route.

    `ifname` is a label only: the interface is `ifindex` (equal routes may be named or not).
    `expires` is the lifetime left, in seconds, of a route that ends by itself (an IPv6
    router advertisement's), as the kernel told it or as it is to be put back; not part of
    what the route is.
    """

    ifindex: int
    ifname: str | None = field(compare=False)
    gateway: str | None
    metric: int
    proto: int
    table: int = MAIN_TABLE
    dst_len: int = 0
    scope: int = SCOPE_UNIVERSE
    tos: int = 0
    attributes: RouteAttributes = NO_ATTRIBUTES
    family: Family = Family.IPV4
    expires: float | None = field(default=None, compare=False)

    @property
    def is_default(self) -> bool:
        return self.dst_len == 0

    @property
    def slot(self) -> tuple[Family, int, int, int]:
        """What the kernel keeps one route of, unless told to append: (family, table, tos,
        metric). A route added with NLM_F_REPLACE takes the place of the route in the same
        slot (IPv6 merges routes appended to one slot into a multipath route)."""
        return (self.family, self.table, self.tos, self.metric)

    def describe(self) -> str:
        via = f"via {self.gateway} " if self.gateway else ""
        text = (
            f"default {via}dev {self.ifname or f'#{self.ifindex}'} "
            f"proto {self.proto} metric {self.metric}"
        )
        extra = self.attributes.describe()
        return f"{text} {extra}" if extra else text


@dataclass(frozen=True)
class Lease:
    """What pingu learned of an uplink's gateway: the gateway, the attributes its own route
    copies, and every foreign default route it was learned from (captured: deleted from the
    table while pingu manages the uplink, put back whole when it stops)."""

    gateway: str | None
    captured: tuple[Route, ...] = ()
    attributes: RouteAttributes = NO_ATTRIBUTES
    valid_until: float | None = None  # monotonic: when the gateway's advertisement ends

    def with_capture(self, route: Route, now: float) -> Lease:
        """This lease after capturing `route`: its gateway and attributes are now the
        uplink's; it replaces a captured route of the same slot (a DHCP renewal); a route
        with a lifetime (a router advertisement's) makes the lease valid that long."""
        kept = tuple(r for r in self.captured if r.slot != route.slot)
        until = None if route.expires is None else now + route.expires
        return Lease(route.gateway, (*kept, route), route.attributes, until)

    def beside(self, route: Route) -> Lease:
        """This lease, also remembering `route` (of another router) to put it back; the
        gateway stays."""
        kept = tuple(r for r in self.captured if r.slot != route.slot or r.gateway != route.gateway)
        return Lease(self.gateway, (*kept, route), self.attributes, self.valid_until)

    def without_router(self, router: str) -> Lease:
        """This lease, forgetting the routes of `router` (another router, withdrawn)."""
        kept = tuple(r for r in self.captured if r.gateway != router)
        return Lease(self.gateway, kept, self.attributes, self.valid_until)


@dataclass(frozen=True)
class TargetResult:
    """The echoes of one round to one target. `abandoned` echoes were sent but not waited
    for (the round was decided before their timeout): neither lost nor answered."""

    target: str
    sent: int
    received: int
    delays_ms: tuple[float, ...] = ()
    error: str | None = None
    abandoned: int = 0

    @property
    def lost(self) -> int:
        """Echoes whose timeout passed without a reply."""
        return self.sent - self.received - self.abandoned

    @property
    def waited(self) -> int:
        """Echoes waited for to the end: answered or lost."""
        return self.sent - self.abandoned

    @property
    def average_ms(self) -> float | None:
        if not self.delays_ms:
            return None
        return sum(self.delays_ms) / len(self.delays_ms)


@dataclass(frozen=True)
class RoundResult:
    """Everything the prober measured in one round on one uplink."""

    targets: tuple[TargetResult, ...]
    early: bool = False
    error: str | None = None
