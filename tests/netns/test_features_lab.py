"""The living documentation proven on a real kernel: scenarios of ``features/`` bound a
second time, to the lab, with the real daemon (how the words map: :mod:`lab_world`).

Bound: every scenario of hysteresis.feature; from failover.feature, failover, failback,
carrier loss, carrier back, and both uplinks failing; from reset_script.feature, a passing
round, an uplink without a script, and a failed round removing the route before the reset
script starts.

Not bound, because a real clock cannot be held to what they say:
- failover.feature "Rounds come every period, counted from the start of the previous one"
  and "A round due while the carrier is down fails without sending an echo": both assert
  what happens within a given number of seconds ("4 seconds pass / no round starts",
  "5 seconds pass / the verdict is ..."), i.e. the scheduler's exact instants; on a shared
  machine the lab can only wait for a round, not say when it came.
- reset_script.feature "Within the grace period ..." and "A script still running is not
  started a second time": 595 and 600 seconds pass against a 600 s grace period in the
  Background (tests/netns/test_e2e_scripts.py checks the grace period on the lab instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from parse import with_pattern
from pytest_bdd import given, parsers, scenario, then, when

from tests.netns.conftest import LabFactory
from tests.netns.daemon import Daemons
from tests.netns.lab_world import LabWorld, same_outcome

pytestmark = pytest.mark.netns

T = TypeVar("T")


def _field(pattern: str, convert: Callable[[str], T]) -> Callable[[str], T]:
    typed: Callable[[str], T] = with_pattern(pattern)(convert)
    return typed


FIELDS = {
    "Word": _field(r"[\w.:-]+", lambda text: text),
    "Path": _field(r"/[\w./-]+", lambda text: text),
}


def step(text: str) -> parsers.parse:
    return parsers.parse(text, extra_types=FIELDS)


@pytest.fixture
def world(lab_factory: LabFactory, tmp_path: Path) -> Iterator[LabWorld]:
    with Daemons(tmp_path) as daemons:
        yield LabWorld(lab_factory, daemons, tmp_path)


# -- the scenarios bound to the lab ------------------------------------------------------


@scenario("failover.feature", "Failover: the primary's round fails, the secondary's route stays")
def test_failover() -> None:
    """A failed round on the primary removes its route; the secondary's stays."""


@scenario("failover.feature", "Failback: the primary passes again and its route comes back")
def test_failback() -> None:
    """After a failed round, the next round goes through the same gateway and, when it
    passes, brings the primary's route back."""


@scenario("failover.feature", "Carrier loss removes the route at once, without waiting for a round")
def test_carrier_loss() -> None:
    """Carrier loss takes the route away without a round."""


@scenario(
    "failover.feature", "Carrier back starts a round at once; the route returns when it passes"
)
def test_carrier_back() -> None:
    """Carrier back starts a round at once; the route waits for its verdict."""


@scenario("failover.feature", "Both uplinks fail: no default route is left (the seed's behaviour)")
def test_both_uplinks_fail() -> None:
    """With when_all_down none, no default route is left."""


@scenario("hysteresis.feature", "Fall 3: two failed rounds keep the route, the third removes it")
def test_fall_3() -> None:
    """Two failed rounds keep the route; the third removes it."""


@scenario("hysteresis.feature", "A passed round in between starts the count again")
def test_passed_round_resets_the_fall_count() -> None:
    """A passed round while failing goes back to up; the count starts again."""


@scenario(
    "hysteresis.feature",
    "Rise 2: one passed round is not enough, the second brings the route back",
)
def test_rise_2() -> None:
    """One passed round after an outage gives rising; the second, the route."""


@scenario("hysteresis.feature", "A failed round while rising starts the rise again")
def test_failed_round_while_rising() -> None:
    """A failed round while rising goes back to down; the rise starts again."""


@scenario("hysteresis.feature", "Carrier loss does not wait for the fall count")
def test_carrier_loss_ignores_fall() -> None:
    """Carrier loss takes the route at once, fall 3 or not."""


@scenario("reset_script.feature", "A failed round removes the route before the reset script starts")
def test_reset_script_after_the_route_is_removed() -> None:
    pass


@scenario("reset_script.feature", "A passing round runs no script")
def test_passing_round_runs_no_script() -> None:
    """A passing round runs no reset script."""


@scenario("reset_script.feature", "An uplink without a reset script only loses its route")
def test_uplink_without_script() -> None:
    """An uplink without a reset script only loses its route."""


# -- given: the configuration and the leases ---------------------------------------------


@given(step("pingu runs with the uplinks:"))
def pingu_runs(world: LabWorld, datatable: list[list[str]]) -> None:
    world.start(datatable)


@given(step("{name:Word} is up with a DHCP lease via {gateway:Word}"))
def up_with_lease(world: LabWorld, name: str, gateway: str) -> None:
    world.lease(name, gateway)


# -- given/when: rounds, links and time --------------------------------------------------


@given(step("the round on {name:Word} passes"))
@when(step("the round on {name:Word} passes"))
def round_passes(world: LabWorld, name: str) -> None:
    world.round(name, passes=True)


@given(step("the round on {name:Word} fails"))
@when(step("the round on {name:Word} fails"))
def round_fails(world: LabWorld, name: str) -> None:
    world.round(name, passes=False)


@given(step("{name:Word} loses its carrier"))
@when(step("{name:Word} loses its carrier"))
def carrier_lost(world: LabWorld, name: str) -> None:
    world.carrier(name, up=False)


@given(step("{name:Word} gets its carrier back"))
@when(step("{name:Word} gets its carrier back"))
def carrier_back(world: LabWorld, name: str) -> None:
    world.carrier(name, up=True)


@given(step("{seconds:g} seconds pass"))
@when(step("{seconds:g} seconds pass"))
def time_passes(world: LabWorld, seconds: float) -> None:
    world.time_passes()


# -- then: what the daemon did in the step -----------------------------------------------


@then(step('the verdict on {name:Word} is {verdict:Word}: "{detail}"'))
def verdict_is_because(world: LabWorld, name: str, verdict: str, detail: str) -> None:
    verdicts = world.verdicts(name)
    wanted = "passed" if verdict == "pass" else "failed"
    assert [outcome for outcome, _ in verdicts] == [wanted], verdicts
    assert same_outcome(detail, verdicts[0][1]), verdicts


@then(step("{name:Word} goes from {old:Word} to {new:Word}"))
def goes_from_to(world: LabWorld, name: str, old: str, new: str) -> None:
    assert world.states(name) == [(old, new)], world.step_batch().lines


@then(step('pingu installs "{route}"'))
def installs(world: LabWorld, route: str) -> None:
    assert world.did("installed", world.translate(route)), world.step_batch().lines


@then(step('pingu removes "{route}"'))
def removes(world: LabWorld, route: str) -> None:
    assert world.did("removed", world.translate(route)), world.step_batch().lines


@then(step("no route is installed, removed or deleted"))
def table_untouched(world: LabWorld) -> None:
    assert world.route_changes() == []


@then(step("a round starts on {name:Word} through {gateway:Word}"))
def round_starts_through(world: LabWorld, name: str, gateway: str) -> None:
    world.round_starts(name, gateway)


@then(step("no round starts"))
def no_round(world: LabWorld) -> None:
    world.no_round_starts()


@then(step("the reset script {path:Path} of {name:Word} runs"))
def reset_script_runs(world: LabWorld, path: str, name: str) -> None:
    assert world.script_runs(name)
    started = world.pingu.find_log(rf" {name}: started reset script \S*{world.script_names[name]} ")
    assert started, f"no start of {path}'s stand-in logged"


@then(step('the reset script of {name:Word} runs with reason "{reason}"'))
def reset_script_reason(world: LabWorld, name: str, reason: str) -> None:
    (run,) = world.script_runs(name)
    _, _, given = run.partition(" ")
    # The real prober stops a hopeless round early and says so after the reason.
    assert same_outcome(reason, given), given


@then(step("pingu removes the route of {name:Word} before the reset script starts"))
def route_removed_before_script(world: LabWorld, name: str) -> None:
    (run,) = world.script_runs(name)
    assert run.startswith("route=absent "), f"the script saw pingu's route of {name}: {run}"
    lines = world.pingu.log_lines()
    removed = next(i for i, line in enumerate(lines) if f" {name} up -> down: " in line)
    started = next(i for i, line in enumerate(lines) if f" {name}: started reset script " in line)
    assert "route metric" in lines[removed]
    assert removed < started


@then(step("no script runs"))
def no_script(world: LabWorld) -> None:
    started, written = world.scripts_started_since_step()
    assert started == [], started
    assert not any(written.values()), written


# -- then: the kernel's table and the daemon's state now ---------------------------------


@then(step('the table holds "{route}"'))
@then(step('the table still holds "{route}"'))
def table_holds(world: LabWorld, route: str) -> None:
    wanted = world.translate(route)
    routes = world.default_routes()
    assert any(wanted.matches(r) for r in routes), routes


@then(step('the table does not hold "{route}"'))
def table_lacks(world: LabWorld, route: str) -> None:
    unwanted = world.translate(route)
    routes = world.default_routes()
    assert not any(unwanted.matches(r) for r in routes), routes


@then(step("the default routes in the table are:"))
def default_routes_are(world: LabWorld, docstring: str) -> None:
    expected = [world.translate(line) for line in docstring.splitlines() if line.strip()]
    routes = world.default_routes()
    assert len(routes) == len(expected), routes
    assert all(any(e.matches(r) for r in routes) for e in expected), routes


@then(step("the table holds no default route"))
def no_default_route(world: LabWorld) -> None:
    assert world.default_routes() == []


@then(step("the health of {name:Word} is {health:Word}"))
def health_is(world: LabWorld, name: str, health: str) -> None:
    assert world.health(name) == health
