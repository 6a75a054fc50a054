"""Outputs of the core: what the runtime must do (routes, probes, scripts) or report."""

from __future__ import annotations

from dataclasses import dataclass

from pingu.domain.model import Route


@dataclass(frozen=True)
class DeleteRoute:
    """Delete a captured (foreign) default route, exactly as the kernel reported it."""

    route: Route


@dataclass(frozen=True)
class InstallRoute:
    """Add pingu's own route (beside any other, even of the same metric); already there is fine."""

    route: Route


@dataclass(frozen=True)
class RemoveRoute:
    """Remove one of pingu's own routes; already gone is not an error."""

    route: Route


@dataclass(frozen=True)
class RestoreRoute:
    """Put a captured route back as it was (when pingu stops with `on_exit: restore`)."""

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


RESET = "reset"
UP_HOOK = "up"
DOWN_HOOK = "down"


@dataclass(frozen=True)
class RunScript:
    """Run an operator's script for `uplink`, without a shell, with `env` added.

    `kind` is "reset" (the uplink is faulty), "up" or "down" (its state changed); the
    runner kills it after `timeout_s`.
    """

    uplink: str
    script: str
    reason: str
    env: tuple[tuple[str, str], ...]
    kind: str = RESET
    timeout_s: float = 60.0
    args: tuple[str, ...] = ()  # the arguments given after the script's path

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.script, *self.args)


@dataclass(frozen=True)
class RouteCaptured:
    """Report: a foreign default route was captured on `uplink` (its gateway is now known)."""

    uplink: str
    route: Route
    gateway_changed: bool


@dataclass(frozen=True)
class RoundJudged:
    """Report: the verdict of a round on `uplink`, with why."""

    uplink: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class StateChanged:
    """Report: the health of `uplink` moved from `old` to `new`, and why."""

    uplink: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class TableRepaired:
    """Report: the table differed from what pingu believed (a change it was never told of),
    and what it does about it."""

    uplink: str | None
    what: str


@dataclass(frozen=True)
class LastResort:
    """Report: every uplink is down (`all_down`), or no longer; `kept` names the uplink whose
    route is kept anyway (`when_all_down: keep_best`), None when the box has no default route.
    """

    all_down: bool
    kept: str | None
    reason: str


Command = (
    DeleteRoute
    | InstallRoute
    | RemoveRoute
    | RestoreRoute
    | StartProbe
    | RunScript
    | RouteCaptured
    | RoundJudged
    | StateChanged
    | TableRepaired
    | LastResort
)
