"""The per-uplink health state machine, with rise/fall hysteresis, as an explicit table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Health(Enum):
    """Where an uplink stands. `failing` and `rising` are counting towards a change."""

    UP = "up"
    FAILING = "failing"
    DOWN = "down"
    RISING = "rising"

    @property
    def routed(self) -> bool:
        """Whether an uplink in this state should carry its default route."""
        return self in (Health.UP, Health.FAILING)


class Signal(Enum):
    """What happened to the uplink: a round passed or failed, its link went away, or the
    gateway it routed through is gone (a router advertisement that was not renewed)."""

    PASS = "pass"
    FAIL = "fail"
    LINK_LOST = "link_lost"
    GATEWAY_LOST = "gateway_lost"


@dataclass(frozen=True)
class Rule:
    """Go to `target`; when `counter` is set, only after that many in a row, via `via`."""

    target: Health
    via: Health | None = None
    counter: str | None = None


TRANSITIONS: dict[tuple[Health, Signal], Rule] = {
    (Health.UP, Signal.PASS): Rule(Health.UP),
    (Health.UP, Signal.FAIL): Rule(Health.DOWN, Health.FAILING, "fall"),
    (Health.FAILING, Signal.PASS): Rule(Health.UP),
    (Health.FAILING, Signal.FAIL): Rule(Health.DOWN, Health.FAILING, "fall"),
    (Health.DOWN, Signal.PASS): Rule(Health.UP, Health.RISING, "rise"),
    (Health.DOWN, Signal.FAIL): Rule(Health.DOWN),
    (Health.RISING, Signal.PASS): Rule(Health.UP, Health.RISING, "rise"),
    (Health.RISING, Signal.FAIL): Rule(Health.DOWN),
    **{(h, Signal.LINK_LOST): Rule(Health.DOWN) for h in Health},
    **{(h, Signal.GATEWAY_LOST): Rule(Health.DOWN) for h in Health},
}


@dataclass(frozen=True)
class HealthState:
    """A health and, while counting, how many rounds in a row have pointed the same way."""

    health: Health
    streak: int = 0


def step(state: HealthState, signal: Signal, rise: int, fall: int) -> HealthState:
    """The next state after `signal`, by the transition table."""
    rule = TRANSITIONS[(state.health, signal)]
    if rule.counter is None or rule.via is None:
        return HealthState(rule.target)
    needed = rise if rule.counter == "rise" else fall
    streak = (state.streak if state.health is rule.via else 0) + 1
    if streak >= needed:
        return HealthState(rule.target)
    return HealthState(rule.via, streak)
