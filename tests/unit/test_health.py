"""The health machine: every transition of the table, with rise/fall counting."""

from __future__ import annotations

import pytest

from pingu.domain.health import TRANSITIONS, Health, HealthState, Signal, step


def run(signals: list[Signal], start: Health, rise: int, fall: int) -> list[Health]:
    state = HealthState(start)
    seen = []
    for signal in signals:
        state = step(state, signal, rise, fall)
        seen.append(state.health)
    return seen


def test_every_state_and_signal_has_a_rule() -> None:
    assert {(h, s) for h in Health for s in Signal} == set(TRANSITIONS)


def test_seed_behaviour_one_round_changes_state() -> None:
    assert run([Signal.FAIL, Signal.PASS], Health.UP, 1, 1) == [Health.DOWN, Health.UP]


def test_fall_three_needs_three_failed_rounds_in_a_row() -> None:
    fail, ok = Signal.FAIL, Signal.PASS
    assert run([fail, fail, ok, fail, fail, fail], Health.UP, 1, 3) == [
        Health.FAILING,
        Health.FAILING,
        Health.UP,
        Health.FAILING,
        Health.FAILING,
        Health.DOWN,
    ]


def test_rise_two_needs_two_good_rounds_in_a_row() -> None:
    fail, ok = Signal.FAIL, Signal.PASS
    assert run([ok, fail, ok, ok], Health.DOWN, 2, 1) == [
        Health.RISING,
        Health.DOWN,
        Health.RISING,
        Health.UP,
    ]


@pytest.mark.parametrize("start", list(Health))
def test_link_lost_goes_down_from_anywhere(start: Health) -> None:
    assert step(HealthState(start, 1), Signal.LINK_LOST, 3, 3) == HealthState(Health.DOWN)


def test_only_up_and_failing_are_routed() -> None:
    assert {h for h in Health if h.routed} == {Health.UP, Health.FAILING}
