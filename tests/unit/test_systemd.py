"""sd_notify: datagrams received on a real AF_UNIX socket (path and abstract), the no-op
path outside systemd, send errors swallowed, and the watchdog interval."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pingu.adapters import systemd
from pingu.adapters.systemd import Notifier, watchdog_interval


@dataclass
class Listener:
    """A bound datagram socket standing in for systemd, and the `$NOTIFY_SOCKET` naming it."""

    sock: socket.socket
    address: str

    def receive(self) -> list[str]:
        """The assignments of the next datagram (waits at most two seconds)."""
        data = self.sock.recv(4096)
        return data.decode().split("\n")

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


@pytest.fixture
def path_listener() -> Iterator[Listener]:
    # A short directory of its own: socket paths are limited to 107 bytes.
    with (
        tempfile.TemporaryDirectory(prefix="pingu-sd-") as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = os.path.join(directory, "notify")
        sock.bind(path)
        sock.settimeout(2.0)
        yield Listener(sock, path)


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"pingu-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        yield Listener(sock, "@" + name)


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Listener:
    fixture = "path_listener" if request.param == "path" else "abstract_listener"
    found: Listener = request.getfixturevalue(fixture)
    return found


def test_ready_with_status(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    assert notifier.enabled
    assert notifier.ready("3 uplinks, 2 up")
    assert listener.receive() == ["READY=1", "STATUS=3 uplinks, 2 up"]


def test_status_watchdog_stopping(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    assert notifier.status("wan1 down:\n4/5 lost")
    assert listener.receive() == ["STATUS=wan1 down: 4/5 lost"]
    assert notifier.watchdog()
    assert listener.receive() == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert listener.receive() == ["STOPPING=1"]


def test_reloading_carries_the_monotonic_time(listener: Listener) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier(listener.address).reloading("reloading config.json")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, monotonic, status = listener.receive()
    assert reloading == "RELOADING=1"
    key, value = monotonic.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert status == "STATUS=reloading config.json"


def test_module_functions_follow_the_environment(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
    assert systemd.ready()
    assert listener.receive() == ["READY=1"]
    assert systemd.status("probing")
    assert listener.receive() == ["STATUS=probing"]
    assert systemd.watchdog()
    assert listener.receive() == ["WATCHDOG=1"]
    assert systemd.reloading()
    assert listener.receive()[0] == "RELOADING=1"
    assert systemd.stopping("restoring routes")
    assert listener.receive() == ["STOPPING=1", "STATUS=restoring routes"]


def test_no_notify_socket_is_a_no_op(
    path_listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_environment()
    assert not notifier.enabled
    assert not notifier.ready("up")
    assert not notifier.watchdog()
    assert not systemd.ready()
    assert not systemd.stopping()
    assert path_listener.nothing_pending()


def test_from_environment_can_hide_the_socket_from_children(path_listener: Listener) -> None:
    environ = {"NOTIFY_SOCKET": path_listener.address, "PATH": "/usr/bin"}
    notifier = Notifier.from_environment(environ, unset=True)
    assert environ == {"PATH": "/usr/bin"}
    assert notifier.ready()
    assert path_listener.receive() == ["READY=1"]


def test_send_errors_are_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pingu.adapters.systemd")
    missing = str(tmp_path / "nobody-listens")
    assert not Notifier(missing).ready()
    assert not Notifier("@pingu-test-nobody-" + secrets.token_hex(6)).watchdog()
    assert len(caplog.records) == 2
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert "sd_notify to " + missing in caplog.records[0].getMessage()


def test_unusable_address_is_ignored() -> None:
    notifier = Notifier("vsock:2:1234")
    assert not notifier.enabled
    assert not notifier.ready()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


def test_watchdog_interval_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 2.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


def test_one_file_executable_accepts_its_bootloaders_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getppid())}
    assert watchdog_interval(environ) is None
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert watchdog_interval(environ) == 5.0


UNIT = Path(__file__).parents[2] / "packaging" / "pingu.service"


def unit_settings() -> dict[str, str]:
    """`Key=value` lines of the unit file (the last one wins, as in systemd)."""
    settings: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


def test_unit_file_runs_a_notify_service_with_watchdog_and_directories() -> None:
    unit = unit_settings()
    assert unit["Type"] == "notify"
    assert unit["NotifyAccess"] == "all"
    assert unit["WatchdogSec"]
    assert unit["Restart"] == "on-failure"
    assert unit["ExecStart"] == "/usr/local/bin/pingu run --config /etc/pingu/config.json"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["StateDirectory"] == "pingu"
    assert unit["RuntimeDirectory"] == "pingu"
    bounding = set(unit["CapabilityBoundingSet"].split())
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW"} <= bounding
    assert "CAP_SYS_ADMIN" not in bounding


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart exists: point it at a binary this machine has.
    copy = tmp_path / "pingu.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/pingu", "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pingu.service" not in done.stderr, done.stderr
