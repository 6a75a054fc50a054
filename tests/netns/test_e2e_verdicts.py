"""The real daemon judging real echoes in the lab: loss against max_lost, delay against
max_delay, and rise/fall hysteresis on a flapping uplink.

Each uplink probes a target of its own, so the responder's loss and delay, which are set
per target, impair one uplink only. Every wait is bounded; no test asserts how long
anything took: the order of the daemon's decisions is read from its log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pingu.lab import Lab
from tests.netns.conftest import LabFactory
from tests.netns.daemon import Daemons, RunningDaemon

pytestmark = pytest.mark.netns

T1, T2 = "203.0.113.10", "203.0.113.11"
FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
ROUNDS_UNDER_WATCH = 4


@pytest.fixture
def lab(lab_factory: LabFactory) -> Lab:
    lab = lab_factory(["wan1", "wan2"], targets=[T1, T2])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    return lab


def start(daemons: Daemons, lab: Lab, wan1: dict[str, Any], period: float = 0.5) -> RunningDaemon:
    """pingu with -v (passed rounds logged): wan1 probes T1 with ``wan1``'s settings, wan2
    probes T2; both routes installed and wan1 seen passing a round before this returns."""
    pingu = daemons.start(
        lab,
        {
            "host": T1,
            "period": period,
            "interfaces": {
                "wan1": {"metric": 100, **FAST, **wan1},
                "wan2": {"metric": 200, **FAST, "host": T2},
            },
        },
        verbose=True,
    )
    both = {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}
    pingu.until(lambda: pingu.own_routes() == both, "pingu's routes for wan1 and wan2")
    pingu.wait_log(r" wan1: round passed: ")
    return pingu


def wan1_routed_while(pingu: RunningDaemon, pattern: str, after: int, what: str) -> None:
    """Wait for ``ROUNDS_UNDER_WATCH`` log lines matching ``pattern``; wan1's route must be
    in the table at every look meanwhile."""

    def watched() -> bool:
        assert "wan1" in pingu.own_routes(), f"wan1's route went while waiting for {what}"
        return len(pingu.find_log(pattern, after=after)) >= ROUNDS_UNDER_WATCH

    pingu.until(watched, f"{ROUNDS_UNDER_WATCH} rounds: {what}")


def test_loss_above_max_lost_fails_the_uplink_and_loss_at_max_lost_keeps_it(
    lab: Lab, daemons: Daemons
) -> None:
    # A long timeout: a reply slowed by a busy machine must not count as a lost echo here.
    pingu = start(daemons, lab, {"timeout": 800})

    # 40 %: any 5 echoes in a row lose exactly 2 (the responder's pattern) = max_lost. A
    # round stops once its pass is certain: lost and abandoned echoes together are 2 at
    # most, and only echoes whose timeout passed count as lost.
    lab.set_loss(T1, 0.4)
    lab.responder_log(clear=True)
    mark = pingu.mark()
    passed = r" wan1: round passed: 203\.0\.113\.10: (?P<lost>\d)/\d lost(?: \(\+(?P<gone>\d))?"
    wan1_routed_while(pingu, passed, mark, "rounds passed at max_lost")
    for round_ in pingu.find_log(passed, after=mark):
        assert int(round_["lost"]) + int(round_["gone"] or 0) <= 2, round_[0]
    assert "failed" not in pingu.decisions("wan1", after=mark)
    assert pingu.find_log(r" wan1 (up|failing) -> ", after=mark) == []
    to_t1 = [e for e in lab.responder_log() if e.dst == T1]
    assert any(not e.answered for e in to_t1)  # the loss was really there

    # 60 %: any 5 echoes in a row lose exactly 3 > max_lost.
    lab.set_loss(T1, 0.6)
    mark = pingu.mark()
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "wan1's route removed under 60 % loss")
    assert pingu.own_routes() == {"wan2": (lab.gateway("wan2"), 200)}
    failed = pingu.wait_log(r" wan1: round failed: (?P<reason>.*)", after=mark)
    assert re.match(r"203\.0\.113\.10: [345]/5 lost \(max_lost 2\)", failed["reason"]), failed[0]
    assert "up -> down" in pingu.decisions("wan1", after=mark)

    lab.set_loss(T1, 0)
    pingu.until(lambda: "wan1" in pingu.own_routes(), "wan1's route back without loss")


def test_delay_above_max_delay_fails_the_uplink_and_delay_below_keeps_it(
    lab: Lab, daemons: Daemons
) -> None:
    pingu = start(daemons, lab, {"max_delay": 150, "timeout": 1000})

    lab.set_delay(T1, 30)
    mark = pingu.mark()
    passed = r" wan1: round passed: 203\.0\.113\.10: 0/5 lost, average (?P<ms>[\d.]+) ms"
    wan1_routed_while(pingu, passed, mark, "30 ms echoes, passed")
    averages = [float(m["ms"]) for m in pingu.find_log(passed, after=mark)]
    assert any(30 <= ms < 150 for ms in averages), averages  # the delay was really measured
    assert "failed" not in pingu.decisions("wan1", after=mark)

    lab.set_delay(T1, 300)
    mark = pingu.mark()
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "wan1's route removed at 300 ms")
    failed = pingu.wait_log(r" wan1: round failed: (?P<reason>.*)", after=mark)
    assert re.search(r"average 3\d\d\.\d ms \(max_delay 150 ms\)", failed["reason"]), failed[0]
    assert "up -> down" in pingu.decisions("wan1", after=mark)
    assert "wan2" in pingu.own_routes()

    lab.set_delay(T1, 0)
    pingu.until(lambda: "wan1" in pingu.own_routes(), "wan1's route back without delay")


def test_fall_3_rise_2_a_short_outage_keeps_the_route_a_long_one_removes_it(
    lab: Lab, daemons: Daemons
) -> None:
    # A period longer than a round, so that the test reacts to a verdict before the next
    # round starts (the upstream is restored right after the first failed round).
    pingu = start(daemons, lab, {"fall": 3, "rise": 2}, period=1.0)

    # A short outage: one failed round (two at most, if a round was in flight) < fall 3.
    mark = pingu.mark()
    lab.cut_upstream("wan1")
    pingu.wait_log(r" wan1: round failed: ", after=mark)
    lab.restore_upstream("wan1")

    def back_to_up() -> bool:
        assert "wan1" in pingu.own_routes(), "wan1's route went in a short outage"
        return "failing -> up" in pingu.decisions("wan1", after=mark)

    pingu.until(back_to_up, "wan1 back from failing to up")
    short = pingu.decisions("wan1", after=mark)
    assert short[short.index("failed") :][:2] == ["failed", "up -> failing"], short
    assert not any(d.endswith("-> down") for d in short), short

    # A long outage: the third failed round in a row takes the route away, not before.
    mark = pingu.mark()
    lab.cut_upstream("wan1")
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "wan1's route removed")
    pingu.wait_log(r" wan1 failing -> down: ", after=mark)
    long = pingu.decisions("wan1", after=mark)
    first, down = long.index("failed"), long.index("failing -> down")
    assert long[first : down + 1] == [
        "failed",
        "up -> failing",
        "failed",
        "failed",
        "failing -> down",
    ], long
    assert all(d == "passed" for d in long[:first]), long  # rounds in flight at the cut

    # Back: one passed round brings it to rising only; the second one, to up.
    mark = pingu.mark()
    lab.restore_upstream("wan1")

    def rising_then_up() -> bool:
        # The table first: pingu logs a change of health before it changes the route.
        routed = "wan1" in pingu.own_routes()
        up = "rising -> up" in pingu.decisions("wan1", after=mark)
        assert up or not routed, "wan1's route back before rise 2"
        return up

    pingu.until(rising_then_up, "wan1 from rising to up")
    pingu.until(lambda: "wan1" in pingu.own_routes(), "wan1's route back")
    back = pingu.decisions("wan1", after=mark)
    first, up = back.index("passed"), back.index("rising -> up")
    assert back[first : up + 1] == ["passed", "down -> rising", "passed", "rising -> up"], back
    assert all(d == "failed" for d in back[:first]), back  # rounds in flight at the restore
