"""What the core asks the shell to do: change routes (named by whose route it is), run a
round of echoes, run a script. What the core only tells of is in :mod:`reports`.

Route verbs say whose route it is, because that is pingu's central safety rule: its own
routes (pingu's `proto`) are installed and removed; a foreign route is only ever deleted
once captured, and restored as it was."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pingu.domain.model import Family, Route


@dataclass(frozen=True)
class DeleteCapturedRoute:
    """Delete a captured (foreign) default route, exactly as the kernel reported it, once
    pingu's own route for the uplink is in (or none is wanted)."""

    route: Route


@dataclass(frozen=True)
class InstallOwnRoute:
    """Add pingu's own route (beside any other, even of the same metric); already there is fine."""

    route: Route


@dataclass(frozen=True)
class RemoveOwnRoute:
    """Remove one of pingu's own routes; already gone is not an error."""

    route: Route


@dataclass(frozen=True)
class RestoreCapturedRoute:
    """Put a captured route back as it was (at a clean stop, or when its uplink is dropped
    from the configuration)."""

    route: Route


@dataclass(frozen=True)
class StartProbe:
    """Send one round of echoes to `targets` through `gateway` on uplink `uplink`."""

    uplink: str
    ifindex: int
    gateway: str | None
    point_to_point: bool
    source: str | None
    targets: tuple[str, ...]
    count: int
    interval_ms: int
    timeout_ms: int
    max_lost: int
    round_id: int = 0
    min_hosts_up: int = 1
    max_delay_ms: float = float("inf")
    decide_early: bool = True  # stop as soon as the verdict is certain (always, in the daemon)
    family: Family = Family.IPV4  # of the targets, the source and the gateway


class ScriptKind(Enum):
    """Why a script runs: the uplink is faulty (`reset`), or its health changed."""

    RESET = "reset"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class RunScript:
    """Run an operator's script for `uplink`, without a shell, with `env` added; the runner
    kills it after `timeout_s`."""

    uplink: str
    script: str
    reason: str
    env: tuple[tuple[str, str], ...]
    kind: ScriptKind = ScriptKind.RESET
    timeout_s: float = 60.0
    args: tuple[str, ...] = ()  # the arguments given after the script's path
    family: Family = Family.IPV4  # whose event it is (PINGU_FAMILY)
    event_id: int | None = None  # the state change it is run for (PINGU_EVENT_ID)

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.script, *self.args)


@dataclass(frozen=True)
class EndFlows:
    """Traffic of `family` left `uplink` (its route went, or a better uplink's came back):
    end what that broke. Delete the conntrack entries source-NATed to one of `addresses`
    or sent from one (`conntrack`), destroy the box's own TCP connections from one of them
    (`sockets`). The shell adds the addresses the interface holds then. Asked for after
    the route change that moved the traffic, in the same decision."""

    uplink: str
    family: Family
    ifindex: int | None
    addresses: tuple[str, ...]
    conntrack: bool
    sockets: bool
    now_via: str | None  # the uplink the traffic takes now; None: no route is left
    waited_s: float = 0.0  # the quiet period it waited for


RouteAction = InstallOwnRoute | RemoveOwnRoute | DeleteCapturedRoute | RestoreCapturedRoute
"""An action on table main."""

Action = RouteAction | StartProbe | RunScript | EndFlows
"""Everything the shell may be asked to do."""
