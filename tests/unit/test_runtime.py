"""The asyncio shell with fake adapters: commands carried out in order, failures contained."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from dependency_injector import providers

from pingu.adapters.config_file import load_config
from pingu.adapters.systemd import Notifier
from pingu.domain.commands import StartProbe
from pingu.domain.config import Config, OnExit
from pingu.domain.events import Event, LinkChanged, RouteAppeared, TableSnapshot
from pingu.domain.model import Family, RoundResult, Route
from pingu.domain.ports import Resync
from pingu.entrypoints.containers import Adapters
from pingu.entrypoints.runtime import Daemon, configure_logging
from tests.unit.fakes import (
    PROTO,
    TARGET,
    TARGET6,
    FakeFlows,
    FakeProber,
    FakeRouteTable,
    FakeScripts,
    MemoryStore,
    RealClock,
    StuckProber,
    config,
    dhcp_route,
    round_result,
    uplink,
)

EVENTS: list[Event] = [
    LinkChanged(2, "wan1", True, True, False, "100.64.1.2"),
    RouteAppeared(dhcp_route("wan1", "192.0.2.1")),
]


async def run_until(daemon: Daemon, done: Callable[[], bool], limit_s: float = 5.0) -> None:
    task = asyncio.create_task(daemon.run())
    for _ in range(int(limit_s / 0.01)):
        if done():
            break
        await asyncio.sleep(0.01)
    daemon.request_stop()
    await asyncio.wait_for(task, 10)


async def running(daemon: Daemon, table: FakeRouteTable) -> asyncio.Task[None]:
    """The daemon started, once it has made its first change to the table (or after 5 s)."""
    task = asyncio.create_task(daemon.run())
    for _ in range(500):
        if table.calls:
            break
        await asyncio.sleep(0.01)
    return task


def make(
    results: list[RoundResult | Exception],
    refuse: set[Route] | None = None,
    *,
    then_hang: bool = False,
) -> tuple[Daemon, FakeRouteTable, FakeProber, FakeScripts]:
    adapters = Adapters()
    table, scripts = FakeRouteTable(EVENTS, refuse), FakeScripts()
    prober = FakeProber(results, then_hang=then_hang)
    cfg = config(uplink("wan1", 100, period=0.05, reset_script="/bin/true"))
    with (
        adapters.route_table.override(providers.Object(table)),
        adapters.prober.override(providers.Object(prober)),
        adapters.scripts.override(providers.Object(scripts)),
        adapters.clock.override(providers.Object(RealClock())),
    ):
        daemon = Daemon(
            cfg,
            adapters.route_table(),
            adapters.prober(),
            adapters.scripts(),
            adapters.clock(),
        )
    return daemon, table, prober, scripts


def test_capture_install_then_delete_then_restore_on_stop() -> None:
    async def scenario() -> None:
        daemon, table, prober, _ = make([])
        await run_until(daemon, lambda: len(prober.rounds) >= 2)
        own = Route(2, "wan1", "192.0.2.1", 100, PROTO)
        dhcp = dhcp_route("wan1", "192.0.2.1")
        assert table.calls[:2] == [("install", own), ("delete", dhcp)]
        assert table.calls[-2:] == [("install", dhcp), ("remove", own)]

    asyncio.run(scenario())


def test_failed_round_removes_the_route_and_runs_the_script() -> None:
    async def scenario() -> None:
        daemon, table, _, scripts = make([round_result(received=0)])
        await run_until(daemon, lambda: bool(scripts.runs))
        own = Route(2, "wan1", "192.0.2.1", 100, PROTO)
        assert ("remove", own) in table.calls
        assert scripts.runs[0].uplink == "wan1"

    asyncio.run(scenario())


def test_prober_crash_is_a_failed_round_not_a_dead_daemon() -> None:
    async def scenario() -> None:
        daemon, _, prober, scripts = make([RuntimeError("socket exploded")])
        await run_until(daemon, lambda: len(prober.rounds) >= 3)
        assert "prober error: socket exploded" in scripts.runs[0].reason

    asyncio.run(scenario())


def test_refused_install_is_logged_and_retried(caplog) -> None:
    own = Route(2, "wan1", "192.0.2.1", 100, PROTO)

    async def scenario() -> None:
        daemon, table, _, _ = make([], refuse={own})
        await run_until(daemon, lambda: table.attempts.count(own) >= 2)
        assert table.attempts.count(own) >= 2
        assert ("install", own) not in table.calls

    asyncio.run(scenario())
    assert "route change refused by the kernel" in caplog.text


def daemon_with(
    cfg: Config, store: MemoryStore | None = None, config_path: str | None = None
) -> tuple[Daemon, FakeRouteTable]:
    table = FakeRouteTable(EVENTS)
    daemon = Daemon(
        cfg,
        table,
        FakeProber([]),
        FakeScripts(),
        RealClock(),
        state_store=store,
        config_path=config_path,
        boot="boot-1",
    )
    return daemon, table


def test_state_is_saved_and_adopted_by_the_next_run() -> None:
    store = MemoryStore()
    cfg = config(uplink("wan1", 100, period=0.05))

    async def first() -> None:
        daemon, _ = daemon_with(cfg, store)
        await run_until(daemon, lambda: store.writes >= 1)

    asyncio.run(first())
    assert isinstance(store.document, dict)
    dhcp = {"gateway": "192.0.2.1", "metric": 1024, "proto": 16, "scope": 0, "table": 254}
    assert store.document["uplinks"] == {
        "wan1": {
            "health": "up",
            "lease": {
                "gateway": "192.0.2.1",
                "attributes": {},
                "captured": [{**dhcp, "tos": 0, "attributes": {}}],
            },
        }
    }

    async def second() -> None:
        daemon, _ = daemon_with(cfg, store)
        daemon.keeper.load(daemon.clock.monotonic())
        lease = daemon.core.view().uplink("wan1").lease
        assert lease is not None
        (captured,) = lease.captured
        assert (lease.gateway, captured.metric, captured.proto) == ("192.0.2.1", 1024, 16)

    asyncio.run(second())


def test_a_corrupt_state_file_is_logged_and_ignored(caplog) -> None:
    async def scenario() -> None:
        daemon, table = daemon_with(config(uplink("wan1", 100)), MemoryStore(broken="bad JSON"))
        await run_until(daemon, lambda: bool(table.calls))
        assert table.calls[0][0] == "install"

    asyncio.run(scenario())
    assert "ignored: bad JSON" in caplog.text


def test_on_exit_keep_leaves_pingu_routes() -> None:
    cfg = dataclasses.replace(config(uplink("wan1", 100)), on_exit=OnExit.KEEP)

    async def scenario() -> None:
        daemon, table = daemon_with(cfg)
        await run_until(daemon, lambda: len(table.calls) >= 2)
        own = Route(2, "wan1", "192.0.2.1", 100, PROTO)
        dhcp = dhcp_route("wan1", "192.0.2.1")
        assert table.calls[:2] == [("install", own), ("delete", dhcp)]
        assert ("remove", own) not in table.calls
        assert ("install", dhcp) not in table.calls  # not restored

    asyncio.run(scenario())


def test_reload_applies_a_good_file_and_rejects_a_bad_one(tmp_path, caplog) -> None:
    path = tmp_path / "config.json"
    caplog.set_level(logging.INFO, logger="pingu")
    path.write_text(json.dumps({"host": "192.0.2.9", "interfaces": {"wan1": {"metric": 100}}}))
    cfg = load_config(path)

    async def scenario() -> None:
        daemon, table = daemon_with(cfg, config_path=str(path))
        task = await running(daemon, table)
        path.write_text(json.dumps({"host": "192.0.2.9", "interfaces": {"wan1": {"metric": 7}}}))
        daemon.request_reload()
        for _ in range(200):
            if ("install", Route(2, "wan1", "192.0.2.1", 7, PROTO)) in table.calls:
                break
            await asyncio.sleep(0.01)
        assert ("remove", Route(2, "wan1", "192.0.2.1", 100, PROTO)) in table.calls
        path.write_text('{"interfaces": {"wan1": {"metric": "high"}}}')
        daemon.request_reload()
        await asyncio.sleep(0.2)
        assert daemon.config.uplinks[0].metric == 7
        daemon.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert "reloaded" in caplog.text
    assert "rejected: 2 problem(s)" in caplog.text


def test_status_reports_every_uplink_as_json() -> None:
    async def scenario() -> None:
        # One failed round, then rounds that never end (they come every 50 ms: the stop
        # may come after the next has started), so the status is that of the first.
        daemon, _, _, scripts = make([round_result(received=2, delay_ms=20.0)], then_hang=True)
        await run_until(daemon, lambda: bool(scripts.runs))
        status = json.loads(json.dumps(daemon.status()))
        assert status["status_version"] == 1
        assert status["all_down"] is True
        assert status["last_resort"] is None
        (wan1,) = status["uplinks"]
        assert (wan1["name"], wan1["state"], wan1["gateway"]) == ("wan1", "down", "192.0.2.1")
        assert wan1["route_installed"] is False
        assert "3/5 lost" in wan1["why"]
        (target,) = wan1["last_round"]["targets"]
        assert (target["sent"], target["lost"], target["avg_ms"]) == (5, 3, 20.0)
        assert wan1["counters"]["rounds"] in (1, 2)  # counted as they start
        assert wan1["counters"]["echoes_sent"] == 5
        assert wan1["counters"]["reset_script_runs"] == 1
        assert wan1["reset_script"]["path"] == "/bin/true"
        assert wan1["reset_script"]["last_run"] is not None

    asyncio.run(scenario())


def test_a_state_change_is_one_log_line_with_what_why_and_the_route(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pingu")

    async def scenario() -> None:
        daemon, _, _, scripts = make([round_result(received=1)])
        await run_until(daemon, lambda: bool(scripts.runs))

    asyncio.run(scenario())
    assert (
        "wan1 up -> down: 203.0.113.10: 4/5 lost (max_lost 2) via 192.0.2.1; "
        "route metric 100 removed" in caplog.text
    )
    removals = [r for r in caplog.records if r.getMessage().startswith("removed default")]
    assert removals
    assert {r.levelno for r in removals} == {logging.DEBUG}


def test_systemd_hears_ready_after_capture_status_and_stopping(tmp_path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    listener.bind(path)
    listener.setblocking(False)

    async def scenario() -> None:
        table = FakeRouteTable(EVENTS)
        daemon = Daemon(
            config(uplink("wan1", 100, period=0.05)),
            table,
            FakeProber([]),
            FakeScripts(),
            RealClock(),
            notifier=Notifier(path),
        )
        await run_until(daemon, lambda: bool(table.calls))

    asyncio.run(scenario())
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(listener.recv(4096).decode())
    listener.close()
    assert messages[0] == "READY=1\nSTATUS=1/1 uplinks routed: wan1"
    assert messages[-1].startswith("STOPPING=1")


@pytest.mark.parametrize(("journald", "stamped"), [(True, False), (False, True)])
def test_log_lines_carry_a_timestamp_only_without_journald(
    monkeypatch: pytest.MonkeyPatch, journald: bool, stamped: bool
) -> None:
    if journald:
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        configure_logging(verbose=False)
        handler = root.handlers[-1]
        record = logging.LogRecord(
            "pingu", logging.WARNING, __file__, 1, "wan1 up -> down", None, None
        )
        line = handler.format(record)
    finally:
        root.handlers = saved
    assert line.endswith("WARNING wan1 up -> down")
    assert (line != "WARNING wan1 up -> down") is stamped


def test_verbose_logs_show_pingu_detail_but_not_pyroute2_internals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    library = logging.getLogger("pyroute2")
    try:
        configure_logging(verbose=True)
        library.setLevel(logging.NOTSET)  # what importing pyroute2 does, after us
        logging.getLogger("pyroute2.netlink.core").debug("message %s", "{...}")
        logging.getLogger("pyroute2.netlink.core").warning("a warning of pyroute2")
        logging.getLogger("pingu").debug("wan1: echo 1 to 203.0.113.10: reply in 0.4 ms")
    finally:
        root.handlers, root.level = saved, level
        library.setLevel(logging.NOTSET)
    output = capsys.readouterr().err
    assert "echo 1 to 203.0.113.10" in output
    assert "a warning of pyroute2" in output
    assert "message {...}" not in output


def test_sigusr1_logs_every_uplink(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pingu")

    async def scenario() -> None:
        daemon, table, _, _ = make([])
        task = await running(daemon, table)
        daemon.log_state()
        daemon.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert "wan1: up, gateway 192.0.2.1, route default via 192.0.2.1 dev wan1" in caplog.text


def test_a_round_abandoned_for_a_new_gateway_is_cancelled() -> None:
    async def scenario() -> None:
        prober = StuckProber()
        table = FakeRouteTable(EVENTS)
        daemon = Daemon(config(uplink("wan1", 100)), table, prober, FakeScripts(), RealClock())
        task = asyncio.create_task(daemon.run())
        for _ in range(500):
            if prober.rounds:
                break
            await asyncio.sleep(0.01)
        daemon.queue.put_nowait(RouteAppeared(dhcp_route("wan1", "192.0.2.99")))
        for _ in range(500):
            if prober.cancelled:
                break
            await asyncio.sleep(0.01)
        assert prober.cancelled == ["192.0.2.1"]
        assert prober.rounds[-1].gateway == "192.0.2.99"
        daemon.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_reload_keeps_restart_only_settings_until_a_restart(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pingu")
    path = tmp_path / "config.json"
    first = {"host": "192.0.2.9", "state_file": None, "interfaces": {"wan1": {"metric": 100}}}
    path.write_text(json.dumps(first))
    cfg = load_config(path)

    async def scenario() -> Daemon:
        daemon, table = daemon_with(cfg, config_path=str(path))
        task = await running(daemon, table)
        moved = {**first, "state_file": str(tmp_path / "s.json"), "metrics": 9100}
        moved["interfaces"] = {"wan1": {"metric": 100, "count": 7}}
        path.write_text(json.dumps(moved))
        daemon.request_reload()
        for _ in range(200):
            if daemon.config.uplinks[0].count == 7:
                break
            await asyncio.sleep(0.01)
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        return daemon

    daemon = asyncio.run(scenario())
    assert daemon.config.uplinks[0].count == 7
    assert (daemon.config.state_file, daemon.config.metrics) == (None, None)
    assert "reload: state_file, metrics take effect at the next restart" in caplog.text


class SubscribeFirstTable(FakeRouteTable):
    """Records whether the monitor had subscribed when the start-up read came; its
    subscription, not the read, sees the DHCP route arrive (as it may, between the two)."""

    def __init__(self) -> None:
        super().__init__(EVENTS[:1])
        self.order: list[str] = []

    async def snapshot(self, *, initial: bool = False) -> TableSnapshot:
        self.order.append("read")
        return await super().snapshot(initial=initial)

    async def events(self) -> AsyncIterator[Event | Resync]:
        self.order.append("subscribed")
        yield Resync()
        yield EVENTS[1]
        await asyncio.Event().wait()


def test_the_monitor_subscribes_before_the_start_up_read_so_no_change_falls_between(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> SubscribeFirstTable:
        table = SubscribeFirstTable()
        daemon = Daemon(
            config(uplink("wan1", 100, period=0.05)),
            table,
            FakeProber([]),
            FakeScripts(),
            RealClock(),
        )
        with caplog.at_level(logging.DEBUG, logger="pingu"):
            await run_until(daemon, lambda: bool(table.calls))
        return table

    table = asyncio.run(scenario())
    assert table.order == ["subscribed", "read"]
    own = Route(2, "wan1", "192.0.2.1", 100, PROTO)
    assert table.calls[:2] == [("install", own), ("delete", dhcp_route("wan1", "192.0.2.1"))]
    # The monitor's first Resync was the start-up read's: no second table check at once.
    assert not [r for r in caplog.records if "table check" in r.getMessage()]


class SlowProber:
    """Each round takes a while and answers for the targets it was given."""

    def __init__(self) -> None:
        self.rounds: list[StartProbe] = []
        self.cancelled: list[StartProbe] = []

    async def run_round(self, probe: StartProbe) -> RoundResult:
        self.rounds.append(probe)
        try:
            await asyncio.sleep(0.03)
        except asyncio.CancelledError:
            self.cancelled.append(probe)
            raise
        return round_result(target=probe.targets[0])


def test_the_two_families_of_an_uplink_probe_side_by_side_each_judged_on_its_own() -> None:
    ra = Route(2, "wan1", "fe80::1", 1024, 9, family=Family.IPV6)
    events: list[Event] = [
        LinkChanged(2, "wan1", True, True, False, "100.64.1.2", "2001:db8:1::2"),
        RouteAppeared(dhcp_route("wan1", "192.0.2.1")),
        RouteAppeared(ra),
    ]
    prober = SlowProber()

    async def scenario() -> Daemon:
        daemon = Daemon(
            config(uplink("wan1", 100, period=0.05, targets=(TARGET, TARGET6))),
            FakeRouteTable(events),
            prober,
            FakeScripts(),
            RealClock(),
        )

        def done() -> bool:
            judged = [daemon.core.view().uplink("wan1").path(f).last_round for f in Family]
            return len(prober.rounds) >= 6 and all(judged)

        await run_until(daemon, done)
        return daemon

    daemon = asyncio.run(scenario())
    view = daemon.core.view().uplink("wan1")
    stopped_in_flight = prober.rounds[-2:]
    assert all(p in stopped_in_flight for p in prober.cancelled)  # only the stop cancels
    for family in Family:
        last = view.path(family).last_round
        assert last is not None, family
        assert last.verdict.passed, family


def test_traffic_leaving_an_uplink_ends_its_flows_off_the_decisions_path_and_counts_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[Event] = [
        LinkChanged(2, "wan1", True, True, False, "100.64.1.2"),
        LinkChanged(3, "wan2", True, True, False, "100.64.2.2"),
        RouteAppeared(dhcp_route("wan1", "192.0.2.1")),
        RouteAppeared(dhcp_route("wan2", "198.51.100.1")),
    ]
    flows = FakeFlows(conntrack=12, sockets=3)

    class Wan1Fails:
        async def run_round(self, probe: StartProbe) -> RoundResult:
            return round_result(received=0 if probe.uplink == "wan1" else 5)

    prober = Wan1Fails()

    async def scenario() -> Daemon:
        daemon = Daemon(
            config(uplink("wan1", 100, period=0.05), uplink("wan2", 200, period=0.05)),
            FakeRouteTable(events),
            prober,
            FakeScripts(),
            RealClock(),
            flows=flows,
        )

        def counted() -> bool:
            return (
                daemon.core.view().uplink("wan1").path(Family.IPV4).counters.sockets_destroyed > 0
            )

        with caplog.at_level(logging.INFO, logger="pingu"):
            await run_until(daemon, counted)
        return daemon

    daemon = asyncio.run(scenario())
    assert flows.checked == 1
    assert [(r.uplink, r.addresses, r.now_via) for r in flows.requests] == [
        ("wan1", ("100.64.1.2",), "wan2")
    ]
    counters = daemon.core.view().uplink("wan1").path(Family.IPV4).counters
    assert (counters.conntrack_deleted, counters.sockets_destroyed) == (12, 3)
    assert (
        "wan1: traffic left it for wan2: 12 conntrack entries deleted, 3 TCP connections "
        "destroyed (of 100.64.1.2)"
    ) in caplog.messages
