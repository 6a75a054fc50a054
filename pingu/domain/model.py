"""Value objects shared by events and commands: routes, links and the results of a round."""

from __future__ import annotations

from dataclasses import dataclass

MAIN_TABLE = 254
SCOPE_UNIVERSE = 0
SCOPE_LINK = 253


@dataclass(frozen=True)
class Route:
    """An IPv4 route as pingu sees it; `gateway` None means a gateway-less (scope link) route."""

    ifindex: int
    ifname: str | None
    gateway: str | None
    metric: int
    proto: int
    table: int = MAIN_TABLE
    dst_len: int = 0
    scope: int = SCOPE_UNIVERSE

    @property
    def is_default(self) -> bool:
        return self.dst_len == 0

    def describe(self) -> str:
        via = f"via {self.gateway} " if self.gateway else ""
        return (
            f"default {via}dev {self.ifname or f'#{self.ifindex}'} "
            f"proto {self.proto} metric {self.metric}"
        )


@dataclass(frozen=True)
class Lease:
    """What pingu learned from a captured route: the gateway and the route's own attributes."""

    gateway: str | None
    metric: int
    proto: int
    scope: int = SCOPE_UNIVERSE


@dataclass(frozen=True)
class TargetResult:
    """The echoes of one round to one target."""

    target: str
    sent: int
    received: int
    delays_ms: tuple[float, ...] = ()
    error: str | None = None

    @property
    def lost(self) -> int:
        return self.sent - self.received

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
