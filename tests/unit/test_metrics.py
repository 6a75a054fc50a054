"""The Prometheus endpoint: a real HTTP server on 127.0.0.1, scraped with urllib."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pingu import __version__
from pingu.adapters.metrics import MetricsError, MetricsServer, StatusCollector
from pingu.entrypoints import containers
from pingu.entrypoints.containers import Adapters
from pingu.entrypoints.operations import StartupError
from tests.unit.fakes import UntouchedRouteTable, config, uplink
from tests.unit.operations_support import WAIT_S, LoopThread, status_document

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def of(found: Samples, name: str, uplink: str | None = None, family: str = "ipv4") -> float:
    """A sample of `uplink` in `family` (every per-uplink metric says which family)."""
    labels = (("family", family), ("uplink", uplink)) if uplink else (("family", family),)
    return found[(name, labels)]


@contextlib.contextmanager
def serving(status: Callable[[], Mapping[str, Any]] = status_document) -> Iterator[MetricsServer]:
    """A metrics server on a free port of 127.0.0.1, its status read on a loop thread."""
    with LoopThread() as loop:
        server = MetricsServer("127.0.0.1", 0, status)

        async def start() -> None:
            server.start()

        loop.run(start())
        try:
            yield server
        finally:
            loop.run(server.close())


def scrape(server: MetricsServer) -> str:
    url = f"http://127.0.0.1:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=WAIT_S) as response:
        text: str = response.read().decode()
    return text


def test_scrape_has_build_info_and_every_uplink() -> None:
    with serving() as server:
        text = scrape(server)
    found = samples(text)
    build = next(k for k in found if k[0] == "pingu_build_info")
    assert dict(build[1])["version"] == __version__
    assert "python" in dict(build[1])
    assert 'pingu_uplink_up{family="ipv4",uplink="wan1"} 0.0' in text
    assert of(found, "pingu_uplink_up", "wan2") == 1.0
    assert of(found, "pingu_uplink_up", "ppp0") == 0.0  # rising: not routed yet
    assert of(found, "pingu_uplink_route_installed", "wan1") == 0.0
    assert of(found, "pingu_uplink_route_installed", "wan2") == 1.0
    assert of(found, "pingu_uplink_last_loss_ratio", "wan1") == 1.0
    assert of(found, "pingu_uplink_last_loss_ratio", "wan2") == 0.5  # 4 of 8 lost
    # 3 replies at 10 ms and 1 at 30 ms: every reply counts once, as in the verdict.
    assert of(found, "pingu_uplink_last_delay_seconds", "wan2") == pytest.approx(0.015)
    assert math.isnan(of(found, "pingu_uplink_last_delay_seconds", "wan1"))  # no reply
    assert math.isnan(of(found, "pingu_uplink_last_loss_ratio", "ppp0"))  # no round yet
    assert of(found, "pingu_uplink_rounds_total", "wan2") == 41
    assert of(found, "pingu_uplink_echoes_sent_total", "wan2") == 328
    assert of(found, "pingu_uplink_echoes_lost_total", "wan1") == 12
    assert of(found, "pingu_uplink_state_changes_total", "wan1") == 1
    assert of(found, "pingu_uplink_reset_script_runs_total", "wan1") == 1
    assert of(found, "pingu_all_down") == 0.0
    assert found[("pingu_status_stale", ())] == 0.0
    assert "# TYPE pingu_uplink_rounds_total counter" in text


def test_each_scrape_reads_the_status_anew() -> None:
    document = status_document()
    with serving(lambda: document) as server:
        assert of(samples(scrape(server)), "pingu_all_down") == 0.0
        document["all_down"] = True
        document["uplinks"][1]["counters"]["rounds"] = 99
        found = samples(scrape(server))
    assert of(found, "pingu_all_down") == 1.0
    assert of(found, "pingu_uplink_rounds_total", "wan2") == 99


def test_the_status_is_read_on_the_event_loop_thread() -> None:
    threads: list[threading.Thread] = []

    def status() -> dict[str, Any]:
        threads.append(threading.current_thread())
        return status_document()

    with serving(status) as server:
        scrape(server)
    assert [t.name for t in threads] == ["test-loop"]


def test_a_stalled_loop_serves_the_last_good_status_marked_stale() -> None:
    with LoopThread() as loop:
        registry = CollectorRegistry()
        registry.register(StatusCollector(status_document, loop.loop, timeout=0.2))
        fresh = generate_latest(registry).decode()
        released = threading.Event()
        loop.loop.call_soon_threadsafe(released.wait, WAIT_S)  # the loop is stuck
        try:
            stale = generate_latest(registry).decode()
        finally:
            released.set()
    assert samples(fresh)[("pingu_status_stale", ())] == 0.0
    assert samples(stale)[("pingu_status_stale", ())] == 1.0
    assert stale.replace("pingu_status_stale 1.0", "pingu_status_stale 0.0") == fresh


def test_a_stalled_loop_before_any_status_serves_build_info_only() -> None:
    with LoopThread() as loop:
        registry = CollectorRegistry()
        registry.register(StatusCollector(status_document, loop.loop, timeout=0.2))
        released = threading.Event()
        loop.loop.call_soon_threadsafe(released.wait, WAIT_S)
        try:
            found = samples(generate_latest(registry).decode())
        finally:
            released.set()
    assert {name for name, _ in found} == {"pingu_build_info", "pingu_status_stale"}


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer("127.0.0.1", port, status_document)

        async def start() -> None:
            server.start()

        with pytest.raises(MetricsError) as error:
            asyncio.run(start())
    assert str(error.value) == f"metrics 127.0.0.1:{port}: cannot listen: Address already in use"


def test_close_stops_serving() -> None:
    with serving() as server:
        port = server.port
        scrape(server)
    with socket.socket() as client:
        client.settimeout(WAIT_S)
        with pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))


def test_metrics_port_taken_stops_start_up_before_any_route_and_frees_the_socket(
    tmp_path: Path,
) -> None:
    table = UntouchedRouteTable()
    control_socket = tmp_path / "control.sock"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = dataclasses.replace(
            config(uplink("wan1", 100)),
            control_socket=str(control_socket),
            metrics=("127.0.0.1", taken.getsockname()[1]),
        )
        adapters = Adapters()
        with (
            adapters.route_table.override(providers.Object(table)),
            adapters.prober.override(providers.Object(object())),
            pytest.raises(StartupError, match="cannot listen: Address already in use"),
        ):
            asyncio.run(containers.serve(cfg, adapters))
    assert table.used == []
    assert not control_socket.exists()  # the control socket it had opened is closed again
