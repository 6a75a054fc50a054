"""The recent history of one path (an uplink in one family), kept in fixed-size rings: the
rounds judged (what the sparkline of `pingu status` draws) and the state changes, each with
the id that its log line and the scripts run for it (`PINGU_EVENT_ID`) carry too.

Memory is bounded whatever the uptime: a path keeps its last ROUNDS_KEPT rounds and its
last EVENTS_KEPT state changes; older ones fall out of the ring.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from pingu.domain.commands import Action, InstallOwnRoute, RemoveOwnRoute
from pingu.domain.health import Health
from pingu.domain.model import Family, RoundResult

ROUNDS_KEPT = 60
EVENTS_KEPT = 20


@dataclass(frozen=True)
class RoundSample:
    """One judged round, as the sparkline needs it: echoes sent, answered and lost (an
    echo not waited for is neither), the average delay of the replies (None without any).
    A round that could send nothing (carrier down, a prober error) sent 0 and answered 0."""

    at: float
    passed: bool
    sent: int
    received: int
    lost: int
    delay_ms: float | None

    @classmethod
    def of(cls, at: float, passed: bool, result: RoundResult | None) -> RoundSample:
        targets = result.targets if result is not None else ()
        delays = [d for t in targets for d in t.delays_ms]
        return cls(
            at=at,
            passed=passed,
            sent=sum(t.sent for t in targets),
            received=sum(t.received for t in targets),
            lost=sum(t.lost for t in targets),
            delay_ms=sum(delays) / len(delays) if delays else None,
        )


@dataclass(frozen=True)
class EventRecord:
    """A state change of a path: its id (shared with its log line and its scripts), when
    (monotonic), from and to, why, and what pingu changed because of it."""

    id: int
    at: float
    old: Health
    new: Health
    reason: str
    changed: tuple[str, ...] = ()


class PathHistory:
    """The two rings of one path."""

    def __init__(self, rounds_kept: int = ROUNDS_KEPT, events_kept: int = EVENTS_KEPT) -> None:
        self._rounds: deque[RoundSample] = deque(maxlen=rounds_kept)
        self._events: deque[EventRecord] = deque(maxlen=events_kept)

    def add_round(self, sample: RoundSample) -> None:
        self._rounds.append(sample)

    def add_event(self, record: EventRecord) -> None:
        self._events.append(record)

    def tell_changes(self, event_id: int, changed: Sequence[str]) -> None:
        """Record what pingu changed for event `event_id` (once the decision is known)."""
        for index, record in enumerate(self._events):
            if record.id == event_id:
                self._events[index] = dataclasses.replace(record, changed=tuple(changed))
                return

    @property
    def rounds(self) -> tuple[RoundSample, ...]:
        """Oldest first."""
        return tuple(self._rounds)

    @property
    def events(self) -> tuple[EventRecord, ...]:
        """Oldest first."""
        return tuple(self._events)

    @property
    def last_event_id(self) -> int | None:
        return self._events[-1].id if self._events else None


def route_changes(uplink: str, family: Family, actions: Sequence[Action]) -> list[tuple[int, str]]:
    """The changes of pingu's own route of one path among a decision's actions, as (index
    of the action, `route metric 100 removed`): what a state change's log line and its
    event record say pingu changed."""
    found: list[tuple[int, str]] = []
    for index, action in enumerate(actions):
        if (
            isinstance(action, InstallOwnRoute | RemoveOwnRoute)
            and action.route.ifname == uplink
            and action.route.family is family
        ):
            done = "installed" if isinstance(action, InstallOwnRoute) else "removed"
            found.append((index, f"route metric {action.route.metric} {done}"))
    return found


def route_outcome(changes: Sequence[str], routed: bool) -> tuple[str, ...]:
    """The route changes of a state change, or what became of the route without one."""
    if changes:
        return tuple(changes)
    return ("route kept",) if routed else ("no route",)
