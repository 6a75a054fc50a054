"""The daemon's shell against hostile files (issue 12), with fake network adapters and
real files: a reload never kills it nor stops its decisions, a corrupt state file never
stops it from starting, and a full disk is one ERROR line, not one per event."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pingu.adapters.config_file import ConfigReloader, load_config
from pingu.adapters.state_file import JsonStateFile
from pingu.domain.config import Config
from pingu.domain.events import Event, LinkChanged, RouteAppeared
from pingu.entrypoints.runtime import Daemon
from tests.unit.fakes import (
    FakeProber,
    FakeRouteTable,
    FakeScripts,
    FullDisk,
    RealClock,
    config,
    dhcp_route,
    uplink,
)

WAIT_S = 10.0
EVENTS: list[Event] = [
    LinkChanged(2, "wan1", True, True, False, "100.64.1.2"),
    RouteAppeared(dhcp_route("wan1", "192.0.2.1")),
]


def fast() -> Config:
    return config(uplink("wan1", 100, period=0.02))


def daemon(cfg: Config, **kwargs: Any) -> tuple[Daemon, FakeRouteTable]:
    table = FakeRouteTable(EVENTS)
    adapters = (table, FakeProber([]), FakeScripts(), RealClock())
    return Daemon(cfg, *adapters, boot="boot-1", **kwargs), table


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT_S / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for: {what}")


def rounds(d: Daemon) -> int:
    return d.core.view().uplink("wan1").counters.rounds


async def stop(d: Daemon, task: asyncio.Task[None]) -> None:
    d.request_stop()
    await asyncio.wait_for(task, WAIT_S)


def config_text(metric: int) -> str:
    return json.dumps({"host": "192.0.2.9", "interfaces": {"wan1": {"metric": metric}}})


# -- 1. a hostile file on reload is rejected; the daemon and its configuration stay ----


@pytest.mark.parametrize(
    "text",
    [
        '{"host": "192.0.2.9", "interfaces": {"wan1": {"metric": ' + "9" * 4301 + "}}}",
        '{"host": "192.0.2.9", "interfaces": ' + "[" * 1000 + "]" * 1000 + "}",
        "{" * 100_000,
    ],
    ids=["4301 digits", "1000 deep", "100000 {"],
)
def test_a_hostile_file_on_reload_is_rejected_and_the_daemon_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(config_text(100))

    async def scenario() -> None:
        d, _ = daemon(fast(), config_path=str(path))
        task = asyncio.create_task(d.run())
        await until(lambda: rounds(d) >= 1, "a first round")
        path.write_text(text)
        d.request_reload()
        await until(lambda: "reload of" in caplog.text, "the reload's verdict")
        seen = rounds(d)
        await until(lambda: rounds(d) > seen + 2, "rounds after the reload")
        assert not task.done()
        assert d.config.uplinks[0].metric == 100
        await stop(d, task)

    asyncio.run(scenario())
    assert "rejected: 1 problem(s); the running configuration stays" in caplog.text


# -- 2. a reload never blocks the decisions --------------------------------------------


def release(fifo: Path) -> None:
    """Let whoever waits to open `fifo` go on (to an empty read)."""
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    os.close(fd)


def test_a_fifo_on_reload_is_rejected_at_once_and_decisions_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)

    async def scenario() -> None:
        d, _ = daemon(fast(), config_path=str(fifo))
        task = asyncio.create_task(d.run())
        try:
            await until(lambda: rounds(d) >= 1, "a first round")
            d.request_reload()
            seen = rounds(d)
            await until(lambda: rounds(d) > seen + 2, "rounds after the reload")
            await until(lambda: "it is a FIFO" in caplog.text, "the reload's verdict")
        finally:
            release(fifo)  # a reader stuck on it would hold up the loop's shutdown
        await stop(d, task)

    asyncio.run(scenario())
    assert "reload of" in caplog.text
    assert "rejected" in caplog.text


def test_a_reload_whose_read_hangs_is_given_up_while_decisions_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hung file system, played by a loader that waits on a lock."""
    path = tmp_path / "config.json"
    path.write_text(config_text(7))
    hung = threading.Event()

    def hanging_load(where: str) -> Config:
        hung.wait(WAIT_S * 3)
        return load_config(where)

    async def scenario() -> None:
        d, _ = daemon(fast(), config_path=str(path))
        d._reloader = ConfigReloader(load=hanging_load, timeout_s=1.0)
        task = asyncio.create_task(d.run())
        await until(lambda: rounds(d) >= 1, "a first round")
        d.request_reload()
        seen = rounds(d)
        await until(lambda: rounds(d) > seen + 2, "rounds while the read hangs")
        await until(lambda: "not done within 1 s" in caplog.text, "the read given up")
        assert d.config.uplinks[0].metric == 100
        await stop(d, task)

    try:
        asyncio.run(scenario())
    finally:
        hung.set()
    assert "the running configuration stays" in caplog.text


def test_a_reload_asked_for_during_a_read_is_read_again_after_it(tmp_path: Path) -> None:
    """The file may have changed after the read under way began: that read's result is
    followed by another read, whose result wins."""
    path = tmp_path / "config.json"
    path.write_text(config_text(7))
    first = threading.Event()
    reads: list[int] = []

    def load(where: str) -> Config:
        reads.append(len(reads))
        # The file as it was when the read began: the first read gives metric 7 even
        # though the file says 8 by the time it ends, so only a second read brings 8.
        loaded = load_config(where)
        if len(reads) == 1:
            first.wait(WAIT_S)
        return loaded

    async def scenario() -> Daemon:
        d, _ = daemon(fast(), config_path=str(path))
        d._reloader = ConfigReloader(load=load)
        task = asyncio.create_task(d.run())
        await until(lambda: rounds(d) >= 1, "a first round")
        d.request_reload()
        await until(lambda: len(reads) == 1, "the first read")
        path.write_text(config_text(8))
        d.request_reload()
        first.set()
        await until(lambda: d.config.uplinks[0].metric == 8, "the second read applied")
        await stop(d, task)
        return d

    asyncio.run(scenario())
    assert len(reads) == 2


# -- 7. a corrupt state file is never fatal ---------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"[" * 5000, b'{"kind": "pingu-state", "version": ' + b"5" * 5000 + b"}"],
    ids=["deep", "5000 digits"],
)
def test_a_corrupt_state_file_is_ignored_and_the_daemon_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    path.chmod(0o600)
    cfg = dataclasses.replace(fast(), state_file=str(path))

    async def scenario() -> None:
        d, table = daemon(cfg, state_store=JsonStateFile(str(path)))
        task = asyncio.create_task(d.run())
        await until(lambda: bool(table.calls), "a first route change")
        await stop(d, task)

    asyncio.run(scenario())
    assert f"state file {path} ignored: not valid JSON" in caplog.text


# -- 8. a full disk is told once, then at a bounded rate --------------------------------


def test_a_full_disk_is_one_error_line_not_one_per_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FullDisk()

    async def scenario() -> None:
        d, _ = daemon(fast(), state_store=store)
        task = asyncio.create_task(d.run())
        await until(lambda: rounds(d) >= 1, "a first round")
        for gateway in range(2, 40):  # every new gateway changes what the file would hold
            d.queue.put_nowait(RouteAppeared(dhcp_route("wan1", f"192.0.2.{gateway}")))
        await until(lambda: store.attempts >= 10, "repeated attempts to write")
        await stop(d, task)

    asyncio.run(scenario())
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and "state file" in r.getMessage()
    ]
    assert len(errors) == 1, errors
    assert "No space left on device" in errors[0]
