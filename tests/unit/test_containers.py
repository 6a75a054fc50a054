"""The composition root: the daemon is built from the configuration and the adapters, which
are opened before it starts and closed after it stops, whatever happened."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
from pathlib import Path

import pytest
from dependency_injector import providers

from pingu.domain.config import Config
from pingu.entrypoints.containers import Adapters, Application, serve, settled
from pingu.entrypoints.operations import StartupError
from pingu.entrypoints.runtime import Daemon
from tests.unit.fakes import OPENED_TABLES, FakeAdapters, FakeRouteTable, config, uplink


def quiet(**changes: object) -> Config:
    """One uplink; no control socket, state file or metrics (nothing outside the test)."""
    return dataclasses.replace(
        config(uplink("wan1", 100, period=0.05)),
        control_socket=None,
        state_file=None,
        **changes,  # type: ignore[arg-type]
    )


def test_the_application_builds_the_daemon_from_the_configuration_and_the_adapters() -> None:
    async def scenario() -> None:
        app = Application(config=quiet(), config_path="/etc/pingu/config.json")
        app.adapters.override(FakeAdapters())
        await settled(app.init_resources())
        daemon = await settled(app.daemon())
        assert isinstance(daemon, Daemon)
        assert isinstance(daemon.route_table, FakeRouteTable)
        assert daemon.config_path == "/etc/pingu/config.json"
        await settled(app.shutdown_resources())
        assert daemon.route_table.closed

    asyncio.run(scenario())


def test_serve_closes_the_adapters_when_the_daemon_stops() -> None:
    adapters = FakeAdapters()

    async def scenario() -> FakeRouteTable:
        served = asyncio.create_task(serve(quiet(), adapters))
        table: FakeRouteTable | None = None
        opened = len(OPENED_TABLES)
        for _ in range(500):
            await asyncio.sleep(0.01)
            table = OPENED_TABLES[-1] if len(OPENED_TABLES) > opened else None
            if table is not None and table.calls:
                break
        assert table is not None
        assert table.calls, "the daemon never touched the table"
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own handler: a clean stop
        await asyncio.wait_for(served, 10)
        return table

    table = asyncio.run(scenario())
    assert table.closed
    assert table.calls[-1][0] == "remove"  # stopped cleanly: pingu's route removed last


def test_serve_closes_the_adapters_when_start_up_is_refused(tmp_path: Path) -> None:
    adapters = FakeAdapters()
    opened = len(OPENED_TABLES)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = quiet(metrics=("127.0.0.1", taken.getsockname()[1]))
        with pytest.raises(StartupError):
            asyncio.run(serve(cfg, adapters))
    (table,) = OPENED_TABLES[opened:]
    assert table.closed
    assert table.calls == []


def test_the_production_adapters_keep_their_provider_names() -> None:
    names = {"clock", "route_table", "prober", "scripts", "router_adverts", "flows", "state_store"}
    assert set(Adapters.providers) == names
    assert set(FakeAdapters.providers) == names
    assert isinstance(Adapters.route_table, providers.Resource)
    assert isinstance(Adapters.prober, providers.Resource)
