"""The history people look at (issue 16, point 3): each path's last rounds and state changes
in bounded rings, one event id shared by a change's log line, its scripts and the status
document, and the sparkline `pingu status` draws of the rounds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pingu.adapters.scripts import SubprocessScriptRunner
from pingu.domain.commands import ScriptKind
from pingu.domain.events import RouteAppeared, ScriptFinished
from pingu.domain.health import Health
from pingu.domain.history import EVENTS_KEPT, ROUNDS_KEPT, EventRecord, PathHistory, RoundSample
from pingu.domain.model import Family, RoundResult, TargetResult
from pingu.domain.reports import StateChanged
from pingu.domain.views import SPARK_LOST, Clocks, narrate, sparkline, status_document
from pingu.entrypoints.runtime import Daemon
from pingu.entrypoints.status import render
from tests.unit.fakes import (
    TARGET,
    TARGET6,
    Driver,
    FakeProber,
    FakeRouteTable,
    RealClock,
    config,
    dhcp_route,
    round_result,
    uplink,
)
from tests.unit.test_core import GW1, GW2, two_uplinks
from tests.unit.test_runtime import EVENTS, run_until

CLOCKS = Clocks(started_mono=1000.0, started_wall=1_800_000_000.0)


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC while the status table is rendered (it shows local times)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def document(driver: Driver) -> dict[str, Any]:
    """The status document as a client reads it (through JSON)."""
    status = status_document(
        driver.core.view(), now=driver.clock.now, clocks=CLOCKS, version="9.9", pid=42
    )
    loaded: dict[str, Any] = json.loads(json.dumps(status))
    return loaded


def wall(driver: Driver) -> float:
    return CLOCKS.started_wall + driver.clock.now - CLOCKS.started_mono


def changes(driver: Driver) -> list[StateChanged]:
    return [c for c in driver.log if isinstance(c, StateChanged)]


# -- the rings -------------------------------------------------------------------------


def test_a_path_keeps_its_last_60_rounds_and_its_last_20_state_changes() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    for number in range(1, 71):
        driver.advance(5.0)
        # Odd rounds fail, even ones pass: with rise 1 and fall 1 each one is a change.
        driver.finish("wan1", round_result(received=0 if number % 2 else 5, delay_ms=number))
    path = driver.core.view().uplink("wan1").first
    assert (ROUNDS_KEPT, EVENTS_KEPT) == (60, 20)
    assert len(path.rounds) == 60
    assert [r.delay_ms for r in path.rounds if r.passed][:2] == [12.0, 14.0]  # 1..10 fell out
    assert [e.id for e in path.events] == list(range(51, 71))
    assert driver.core.view().last_event_id == 70
    wan1 = document(driver)["uplinks"][0]["families"]["ipv4"]
    assert len(wan1["rounds"]) == 60
    assert len(document(driver)["events"]) == 20


def test_the_ring_drops_the_oldest_and_records_what_a_change_did() -> None:
    history = PathHistory(rounds_kept=3, events_kept=2)
    for at in range(5):
        history.add_round(RoundSample(float(at), True, 1, 1, 0, 1.0))
        history.add_event(EventRecord(at + 1, float(at), Health.UP, Health.DOWN, "why"))
    assert [r.at for r in history.rounds] == [2.0, 3.0, 4.0]
    assert [e.id for e in history.events] == [4, 5]
    history.tell_changes(4, ["route metric 100 removed"])
    history.tell_changes(1, ["long gone: nothing to tell"])
    assert [e.changed for e in history.events] == [("route metric 100 removed",), ()]
    assert history.last_event_id == 5
    assert PathHistory().last_event_id is None


def test_a_round_sample_counts_answered_lost_and_not_waited_for_echoes() -> None:
    result = RoundResult(
        (
            TargetResult("203.0.113.10", 5, 2, (10.0, 30.0), abandoned=1),
            TargetResult("203.0.113.11", 5, 5, (20.0,) * 5),
        )
    )
    sample = RoundSample.of(7.0, True, result)
    assert (sample.sent, sample.received, sample.lost) == (10, 7, 2)
    assert sample.delay_ms == pytest.approx(140.0 / 7)
    assert RoundSample.of(8.0, False, None) == RoundSample(8.0, False, 0, 0, 0, None)


def test_a_round_that_could_send_nothing_is_a_round_without_reply() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.finish("wan1", round_result(delay_ms=10.0))
    driver.link("wan1", carrier=False)
    driver.advance(5.0)  # a round due without carrier: judged at once, nothing sent
    rounds = driver.core.view().uplink("wan1").first.rounds
    assert [(r.passed, r.sent, r.received) for r in rounds] == [(True, 5, 5), (False, 0, 0)]


# -- one id for a change, wherever it is told ---------------------------------------------


def test_event_ids_grow_across_uplinks_and_tie_the_log_line_the_scripts_and_the_status() -> None:
    driver = two_uplinks(down_script="/sbin/down", up_script="/sbin/up")
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    lines = []
    for name, result in [("wan1", 0), ("wan2", 0), ("wan1", 5)]:
        driver.advance(5.0)
        before = len(driver.log)
        driver.finish(name, round_result(received=result))
        reports = [o for o in driver.log[before:] if isinstance(o, StateChanged)]
        actions = [o for o in driver.log[before:] if not isinstance(o, StateChanged)]
        lines += [
            line.text
            for line in narrate(actions, reports, driver.core.view()).reports  # type: ignore[arg-type]
        ]
    assert [(c.uplink, c.new.value, c.event_id) for c in changes(driver)] == [
        ("wan1", "down", 1),
        ("wan2", "down", 2),
        ("wan1", "up", 3),
    ]
    assert lines == [
        f"wan1 up -> down: 203.0.113.10: 5/5 lost, no reply via {GW1}; route metric 100 "
        "removed (event 1)",
        f"wan2 up -> down: 203.0.113.10: 5/5 lost, no reply via {GW2}; route metric 200 "
        "removed (event 2)",
        f"wan1 down -> up: 203.0.113.10: 0/5 lost, average 10.0 ms via {GW1}; route metric "
        "100 installed (event 3)",
    ]
    scripts = driver.scripts()
    assert [(s.uplink, s.kind, s.event_id, dict(s.env)["PINGU_EVENT_ID"]) for s in scripts] == [
        ("wan1", ScriptKind.DOWN, 1, "1"),
        ("wan2", ScriptKind.DOWN, 2, "2"),
        ("wan1", ScriptKind.UP, 3, "3"),
    ]
    status = document(driver)
    assert status["last_event_id"] == 3
    assert status["events"] == [
        {"id": 1, "at": "2027-01-15T08:00:05+00:00", "uplink": "wan1", "family": "ipv4",
         "from": "up", "to": "down", "why": "203.0.113.10: 5/5 lost, no reply",
         "changed": ["route metric 100 removed", "down_script run"]},
        {"id": 2, "at": "2027-01-15T08:00:10+00:00", "uplink": "wan2", "family": "ipv4",
         "from": "up", "to": "down", "why": "203.0.113.10: 5/5 lost, no reply",
         "changed": ["route metric 200 removed", "down_script run"]},
        {"id": 3, "at": "2027-01-15T08:00:15+00:00", "uplink": "wan1", "family": "ipv4",
         "from": "down", "to": "up", "why": "203.0.113.10: 0/5 lost, average 10.0 ms",
         "changed": ["route metric 100 installed", "up_script run"]},
    ]  # fmt: skip


def test_a_reset_script_carries_the_change_that_took_its_uplink_down() -> None:
    driver = two_uplinks(reset_script="/sbin/reset", reset_script_grace_period=0)
    driver.capture("wan1", GW1)
    driver.finish("wan1", round_result(received=1))  # 4/5 lost: up -> down, event 1
    driver.send(ScriptFinished("wan1", "/sbin/reset", 0, ScriptKind.RESET))
    driver.advance(5.0)
    driver.fail("wan1")  # still down: no new change, another reset
    resets = driver.scripts("wan1")
    assert [(s.event_id, dict(s.env)["PINGU_EVENT_ID"]) for s in resets] == [(1, "1"), (1, "1")]
    (event,) = driver.core.view().uplink("wan1").first.events
    assert event.changed == ("route metric 100 removed", "reset_script run")
    # An uplink that never changed state (no gateway ever learned) has no event to name.
    driver.advance(5.0)
    (no_gateway,) = [s for s in driver.scripts("wan2") if s.kind is ScriptKind.RESET]
    assert (no_gateway.reason, no_gateway.event_id) == ("no gateway learned", None)
    assert dict(no_gateway.env)["PINGU_EVENT_ID"] == ""


def test_a_change_that_moves_no_route_says_so() -> None:
    driver = two_uplinks(fall=2)
    driver.capture("wan1", GW1)
    driver.fail("wan1")  # up -> failing: the route stays
    (event,) = driver.core.view().uplink("wan1").first.events
    assert (event.old, event.new, event.changed) == (Health.UP, Health.FAILING, ("route kept",))


# -- the sparkline -------------------------------------------------------------------------


def test_the_sparkline_scales_delays_to_the_largest_and_shows_loss() -> None:
    assert sparkline([(1.0, 5, 0), (2.0, 5, 0), (4.0, 5, 0), (8.0, 5, 0)]) == "▁▂▄█"
    # Heights are in eighths of the largest delay, never below one eighth.
    assert sparkline([(0.1, 5, 0), (50.0, 5, 0), (99.0, 5, 0), (100.0, 5, 0)]) == "▁▄██"
    assert sparkline([(3.0, 5, 0)] * 3) == "███"
    assert sparkline([(0.0, 5, 0), (0.0, 5, 0)]) == "▁▁"
    # Some echoes lost: a shaded block, whatever the delay; none answered: a cross.
    assert (
        sparkline([(10.0, 5, 0), (500.0, 3, 2), (None, 0, 5), (None, 0, 0)])
        == f"█▒{SPARK_LOST}{SPARK_LOST}"
    )
    assert sparkline([]) == ""


def test_status_shows_the_sparkline_and_the_last_changes_of_each_uplink(utc: None) -> None:
    driver = two_uplinks(down_script="/sbin/down")
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    for delay in (10.0, 20.0, 40.0):
        driver.finish("wan1", round_result(delay_ms=delay))
        driver.advance(5.0)
    driver.finish("wan1", round_result(received=3, delay_ms=40.0))
    driver.advance(5.0)
    driver.fail("wan1")
    driver.advance(5.0)
    driver.finish("wan1", round_result(delay_ms=20.0))

    lines = render(document(driver), now=wall(driver)).splitlines()

    wan1 = lines[lines.index("wan1  up for 0.0s") :]
    assert f"  rounds       ▂▄█▒{SPARK_LOST}▄  6 rounds, █ 40.0 ms, 7/30 echoes lost" in wan1
    at = wan1.index("  changes      08:00:25 #2 down -> up: 203.0.113.10: 0/5 lost, average "
                    "20.0 ms; route metric 100 installed")  # fmt: skip
    assert wan1[at + 1] == (
        "               08:00:20 #1 up -> down: 203.0.113.10: 5/5 lost, no reply; "
        "route metric 100 removed, down_script run"
    )
    wan2 = lines[lines.index("wan2  up for 25s") :]
    assert "  rounds       none yet" in wan2
    assert "  changes      none since start-up" in wan2


def test_status_shows_the_five_newest_changes_and_how_many_more_json_has(utc: None) -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    for number in range(8):
        driver.finish("wan1", round_result(received=5 if number % 2 else 0))
        driver.advance(5.0)
    lines = render(document(driver), now=wall(driver)).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  changes "))
    shown = lines[start : start + 6]
    ids = [re.search(r" #(\d+) ", line) for line in shown[:5]]
    assert [int(found[1]) for found in ids if found] == [8, 7, 6, 5, 4]
    assert shown[5] == "               (3 older: pingu status --json)"


def test_a_change_older_than_a_day_is_shown_with_its_date(utc: None) -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.fail("wan1")
    driver.clock.advance(2 * 86400.0)
    text = render(document(driver), now=wall(driver))
    assert "  changes      2027-01-15 08:00:00 #1 up -> down: " in text


def test_a_document_without_history_is_shown_as_before() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    status = document(driver)
    del status["events"]
    for entry in status["uplinks"]:
        for path in entry["families"].values():
            del path["rounds"]
    lines = render(status, now=wall(driver)).splitlines()
    assert not [line for line in lines if line.startswith(("  rounds ", "  changes "))]
    assert "  route        installed, metric 100" in lines


def test_the_version_1_fields_stay_as_they_were() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.fail("wan1")
    status = document(driver)
    assert status["status_version"] == 1
    wan1 = status["uplinks"][0]
    assert "rounds" not in wan1  # only in the family sections
    assert "events" not in wan1
    assert wan1["state"] == "down"
    assert wan1["families"]["ipv4"]["rounds"] == [
        {"at": "2027-01-15T08:00:00+00:00", "passed": False, "sent": 5, "received": 0,
         "lost": 5, "delay_ms": None}
    ]  # fmt: skip


# -- the real shell: a script's environment, the log and the status agree ----------------


def test_the_daemon_logs_runs_and_shows_a_change_under_one_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("pingu runs only root's scripts: needs root to make one")
    caplog.set_level(logging.INFO)
    record = tmp_path / "events"
    down = tmp_path / "down.sh"
    down.write_text(
        "#!/bin/sh\n"
        + textwrap.dedent(f"""\
            echo "$PINGU_EVENT_ID $PINGU_EVENT $PINGU_OLD_STATE $PINGU_STATE" >> {record}
        """)
    )
    down.chmod(0o755)
    table = FakeRouteTable(EVENTS)
    prober = FakeProber([round_result(), round_result(received=0)])
    cfg = config(uplink("wan1", 100, period=0.05, down_script=str(down)))

    async def scenario() -> dict[str, object]:
        daemon = Daemon(cfg, table, prober, SubprocessScriptRunner(), RealClock())
        await run_until(daemon, lambda: record.exists() and bool(record.read_text()))
        return daemon.status()

    status = json.loads(json.dumps(asyncio.run(scenario())))
    assert record.read_text() == "1 down up down\n"
    change = "wan1 up -> down: 203.0.113.10: 5/5 lost, no reply via 192.0.2.1; route metric 100"
    assert f"{change} removed (event 1)" in caplog.text
    assert f"wan1: started down script {down} (pid " in caplog.text
    assert ") for event 1: 203.0.113.10: 5/5 lost, no reply" in caplog.text
    (event,) = status["events"]
    assert (event["id"], event["from"], event["to"]) == (1, "up", "down")
    assert event["changed"] == ["route metric 100 removed", "down_script run"]
    assert status["last_event_id"] == 1


def test_each_family_of_a_dual_stack_uplink_shows_its_own_history(utc: None) -> None:
    driver = Driver(config(uplink("wan1", 100, targets=(TARGET, TARGET6))))
    driver.link("wan1")
    driver.capture("wan1", GW1)
    ra = dataclasses.replace(dhcp_route("wan1", "fe80::1"), proto=9, family=Family.IPV6)
    driver.send(RouteAppeared(ra))
    driver.finish("wan1")
    driver.finish("wan1", round_result(received=0, target=TARGET6), Family.IPV6)
    lines = render(document(driver), now=wall(driver)).splitlines()
    ipv4 = lines[lines.index("wan1/ipv4  up for 0.0s") : lines.index("wan1/ipv6  down for 0.0s")]
    ipv6 = lines[lines.index("wan1/ipv6  down for 0.0s") :]
    assert "  rounds       █  1 round, █ 10.0 ms, 0/5 echoes lost" in ipv4
    assert "  changes      none since start-up" in ipv4
    assert f"  rounds       {SPARK_LOST}  1 round, 5/5 echoes lost" in ipv6
    assert (
        "  changes      08:00:00 #1 up -> down: 2001:db8:ffff::10: 5/5 lost, no reply; "
        "route metric 100 removed"
    ) in ipv6
    events: list[dict[str, object]] = document(driver)["events"]
    assert [(e["uplink"], e["family"]) for e in events] == [("wan1", "ipv6")]
