"""What the core tells of, besides what it asks to be done: the shell logs these (and the
read side counts them); nothing is carried out because of them."""

from __future__ import annotations

from dataclasses import dataclass

from pingu.domain.health import Health
from pingu.domain.model import Family, Route


@dataclass(frozen=True)
class RouteCaptured:
    """A foreign default route was captured on `uplink` (its gateway is now known)."""

    uplink: str
    route: Route
    gateway_changed: bool


@dataclass(frozen=True)
class RoundJudged:
    """The verdict of a round on `uplink`, with why."""

    uplink: str
    passed: bool
    reason: str
    family: Family = Family.IPV4


@dataclass(frozen=True)
class StateChanged:
    """The health of `uplink` moved from `old` to `new`, and why; `event_id` numbers the
    change, the same in its log line, its scripts' environment and the status history."""

    uplink: str
    old: Health
    new: Health
    reason: str
    family: Family = Family.IPV4
    event_id: int = 0


@dataclass(frozen=True)
class TableRepaired:
    """The table differed from what pingu believed (a change it was never told of), and
    what it does about it."""

    uplink: str | None
    what: str
    family: Family = Family.IPV4


@dataclass(frozen=True)
class LastResort:
    """Every uplink is down (`all_down`), or no longer; `kept` names the uplink whose route
    is kept anyway (`when_all_down: keep_best`), None when the box has no default route."""

    all_down: bool
    kept: str | None
    reason: str
    family: Family = Family.IPV4


Report = RouteCaptured | RoundJudged | StateChanged | TableRepaired | LastResort
"""Everything the core tells of."""
