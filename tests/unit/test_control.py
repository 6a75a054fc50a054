"""The control socket and `pingu status`: real Unix sockets in tmp_path, a fake status."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import grp
import json
import logging
import os
import select
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from pingu.adapters import control
from pingu.adapters.control import ControlServer, ControlSocketError
from pingu.adapters.privileges import privilege_problem
from pingu.entrypoints import cli, containers, runtime
from pingu.entrypoints.containers import Adapters
from pingu.entrypoints.operations import StartupError
from pingu.entrypoints.status import render
from tests.unit.fakes import UntouchedRouteTable, config, uplink
from tests.unit.operations_support import WAIT_S, LoopThread, status_document

NOW = 1767229330.0  # 2026-01-01T01:02:10+00:00


@contextlib.contextmanager
def serving(
    path: Path, status: Callable[[], Mapping[str, Any]] = status_document, group: str | None = None
) -> Iterator[ControlServer]:
    """A control server on `path`, answering from a loop thread, closed at the end."""
    with LoopThread() as loop:
        server = ControlServer(str(path), status, group)
        loop.run(server.start())
        try:
            yield server
        finally:
            loop.run(server.close())


def status_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["status", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def request(path: Path, payload: bytes, *, half_close: bool = False) -> dict[str, Any]:
    """Send raw bytes on the socket; the one JSON line that comes back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT_S)
        sock.connect(str(path))
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def stale_socket(path: Path) -> None:
    """A socket file nobody listens on any more, as a killed pingu leaves it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


@contextlib.contextmanager
def answering_with(path: Path, reply: bytes | None) -> Iterator[None]:
    """A fake daemon that reads one request and answers `reply` (None: closes silently)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    listener.settimeout(WAIT_S)

    def serve_one() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as conn:
            conn.settimeout(WAIT_S)
            conn.recv(4096)
            if reply is not None:
                conn.sendall(reply)

    thread = threading.Thread(target=serve_one)
    thread.start()
    try:
        yield
    finally:
        thread.join(WAIT_S)
        listener.close()
        path.unlink()


# -- the server ------------------------------------------------------------------------


def test_status_round_trip_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "control.sock"
    with serving(path):
        code, out, err = status_cli(capsys, "--json", "--socket", str(path))
    assert (code, err) == (0, "")
    assert json.loads(out) == status_document()
    assert out == json.dumps(status_document(), indent=2, sort_keys=True) + "\n"


def test_socket_is_root_only_in_a_created_directory_and_removed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "run" / "pingu" / "control.sock"
    with serving(path):
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) & 0o755 == 0o755
    assert not path.exists()
    assert path.parent.is_dir()


def _another_group() -> grp.struct_group:
    """A group the socket can be given: any other than ours as root, else our own."""
    if os.geteuid() == 0:
        return next(g for g in grp.getgrall() if g.gr_gid != os.getegid())
    return grp.getgrgid(os.getegid())


def test_control_group_makes_the_socket_0660_and_group_owned(tmp_path: Path) -> None:
    group = _another_group()
    path = tmp_path / "control.sock"
    with serving(path, group=group.gr_name):
        info = os.stat(path)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == group.gr_gid
        assert request(path, b'{"command": "status"}\n')["ok"] is True


def test_unknown_group_is_refused_at_start_up_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    server = ControlServer(str(path), status_document, "no-such-group-for-pingu")
    with pytest.raises(ControlSocketError, match="no such group"):
        asyncio.run(server.start())
    assert not path.exists()


def test_a_second_pingu_is_refused_while_the_first_answers(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with serving(path):
        second = ControlServer(str(path), status_document)
        with pytest.raises(ControlSocketError) as refused:
            asyncio.run(second.start())
        assert str(refused.value) == f"another pingu is running (control socket {path} answers)"
        assert request(path, b'{"command": "status"}\n')["ok"] is True


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale_socket(path)
    with serving(path):
        assert request(path, b'{"command": "status"}\n')["status"]["pid"] == 4242


def test_something_else_in_the_way_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    path.write_text("not a socket")
    with pytest.raises(ControlSocketError, match="not a socket"):
        asyncio.run(ControlServer(str(path), status_document).start())
    assert path.read_text() == "not a socket"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"hello\n", "request is not JSON"),
        (b"\xff\xfe\n", "request is not JSON"),
        (b'["status"]\n', "unknown command None"),
        (b'{"command": "reboot"}\n', "unknown command 'reboot'"),
        (b"x" * 5000, "request longer than 4096 bytes"),
    ],
)
def test_bad_requests_get_an_error_reply(tmp_path: Path, payload: bytes, error: str) -> None:
    path = tmp_path / "control.sock"
    with serving(path):
        reply = request(path, payload)
        assert reply["ok"] is False
        assert error in reply["error"]
        assert request(path, b'{"command": "status"}\n')["ok"] is True


def test_a_request_without_newline_is_answered_at_end_of_input(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with serving(path):
        assert request(path, b'{"command": "status"}', half_close=True)["ok"] is True


def test_a_silent_client_is_dropped_and_does_not_hold_up_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "READ_TIMEOUT_S", 0.5)
    path = tmp_path / "control.sock"
    with serving(path), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(WAIT_S)
        silent.connect(str(path))
        assert request(path, b'{"command": "status"}\n')["ok"] is True
        reply = json.loads(silent.recv(65536))
        assert reply == {"ok": False, "error": "no request within 0.5 s"}
        assert silent.recv(1) == b""  # and the connection is closed


def test_many_clients_at_once(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with serving(path), concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda _: request(path, b'{"command": "status"}\n'), range(64)))
    assert all(reply["ok"] and reply["status"]["pid"] == 4242 for reply in replies)


def test_a_failing_status_is_an_error_reply_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("core exploded")

    path = tmp_path / "control.sock"
    with serving(path, broken):
        code, out, err = status_cli(capsys, "--socket", str(path))
        assert (code, out) == (1, "")
        assert "status failed: core exploded" in err
        assert "Traceback" not in err
        code, _, _ = status_cli(capsys, "--socket", str(path))
        assert code == 1  # still serving


def test_a_second_daemon_refused_at_start_up_touches_no_route(tmp_path: Path) -> None:
    table = UntouchedRouteTable()
    path = tmp_path / "control.sock"
    cfg = dataclasses.replace(config(uplink("wan1", 100)), control_socket=str(path))
    adapters = Adapters()
    with (
        serving(path),
        adapters.route_table.override(providers.Object(table)),
        adapters.prober.override(providers.Object(object())),
        pytest.raises(StartupError, match="another pingu is running"),
    ):
        asyncio.run(containers.serve(cfg, adapters))
    assert table.used == []


def test_run_exits_1_when_start_up_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def refused(*_: object, **__: object) -> None:
        raise StartupError("another pingu is running (control socket /x answers)")

    if privilege_problem() is not None:
        pytest.skip("pingu run refuses at once without CAP_NET_ADMIN and CAP_NET_RAW")
    path = tmp_path / "config.json"
    path.write_text('{"host": "203.0.113.10", "interfaces": {"wan1": {"metric": 100}}}')
    monkeypatch.setattr(containers, "serve", refused)
    assert runtime.run_daemon(str(path)) == 1
    assert "not started, no route touched: another pingu is running" in caplog.text


# -- the command line ------------------------------------------------------------------


def test_table_shows_each_uplink_with_state_gateway_route_round_and_why() -> None:
    text = render(status_document(), now=NOW)
    lines = text.splitlines()
    assert lines[0] == "pingu 0.1.0 | pid 4242 | up 1h02m | 1 of 3 uplinks routed"
    wan1 = lines[lines.index("wan1  down for 12s") :]
    assert wan1[1:10] == [
        "  why          round failed: 5/5 lost via 192.0.2.1 (max_lost 2)",
        "  gateway      192.0.2.1",
        "  route        not installed (metric 100)",
        "  last round   failed 10s ago: 5 sent, 5 lost",
        "                 203.0.113.10: 5 sent, 5 lost, avg -, worst -",
        "  next round   in 0.4s",
        "  reset script /usr/local/sbin/reset-wan1, last run 15s ago",
        "  counters     40 rounds, 200 echoes (12 lost), 1 state changes, 1 reset script runs",
        "",
    ]
    assert "wan2  up for 1h02m" in lines
    assert "  route        installed, metric 200" in lines
    assert "                 203.0.113.11: 4 sent, 3 lost, avg 30.0 ms, worst 30.0 ms" in lines
    assert "  next round   running now" in lines
    assert "ppp0  rising for 2.0s (no carrier)" in lines
    assert "  gateway      none (point-to-point)" in lines
    assert "  last round   none yet" in lines


def test_table_header_says_when_everything_is_down() -> None:
    document = status_document()
    document.update(all_down=True, last_resort="wan2")
    assert (
        render(document, now=NOW)
        .splitlines()[0]
        .endswith("ALL DOWN: last resort wan2's route kept")
    )
    document.update(last_resort=None)
    assert render(document, now=NOW).splitlines()[0].endswith("ALL DOWN: no route left")
    document["uplinks"][0].update(gateway_known=False, gateway=None)
    assert "  gateway      not learned yet" in render(document, now=NOW).splitlines()


def test_status_table_over_the_socket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "control.sock"
    with serving(path):
        code, out, err = status_cli(capsys, "--socket", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("pingu 0.1.0 | pid 4242 |")
    for name, state in [("wan1", "down"), ("wan2", "up"), ("ppp0", "rising")]:
        assert f"\n{name}  {state} for " in out


def test_socket_taken_from_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "control.sock"
    conf = tmp_path / "config.json"
    conf.write_text(
        '{"host": "203.0.113.10", // comments are fine here too\n'
        f' "control_socket": "{path}", "interfaces": {{"wan1": {{"metric": 100}}}}}}'
    )
    with serving(path):
        code, out, _ = status_cli(capsys, "--json", "--config", str(conf))
    assert code == 0
    assert json.loads(out)["pid"] == 4242


def test_configuration_without_a_control_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "config.json"
    conf.write_text('{"control_socket": null}')
    code, _, err = status_cli(capsys, "--config", str(conf))
    assert code == 3
    assert "control_socket is null" in err
    code, _, err = status_cli(capsys, "--config", str(tmp_path / "missing.json"))
    assert code == 2
    assert "missing.json: cannot read the configuration file: No such file or directory" in err


def test_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "control.sock"
    code, out, err = status_cli(capsys, "--socket", str(path))
    assert (code, out) == (3, "")
    assert err == f"pingu is not running: no control socket at {path}\n"

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    code, _, err = status_cli(capsys, "--socket", str(not_a_dir / "control.sock"))
    assert code == 3
    assert err.startswith("pingu is not running: no control socket at")

    stale_socket(path)
    code, _, err = status_cli(capsys, "--socket", str(path))
    assert code == 3
    assert "nothing answers on control socket" in err


def _as_nobody(argv: list[str]) -> tuple[int, str]:
    """Run `pingu ARGV` in a child process without root (exit status, stderr + stdout)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run, report through the pipe, never return
        code = 99
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            with os.fdopen(write_end, "w") as out:
                sys.stdout = sys.stderr = out
                code = cli.main(argv)
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


def test_permission_denied_without_root() -> None:
    # A directory of its own that everybody may enter, so that only the socket's own
    # mode stands between the unprivileged client and the daemon.
    where = Path(tempfile.mkdtemp(prefix="pingu-control-"))
    try:
        where.chmod(0o755)
        path = where / "control.sock"
        with serving(path):
            if os.geteuid() != 0:
                path.chmod(0)  # the owner is not root: only mode 0 keeps it out
            code, text = _as_nobody(["status", "--socket", str(path), "--timeout", "5"])
    finally:
        shutil.rmtree(where)
    assert code == 4
    assert text.startswith(f"permission denied on control socket {path}: run as root")
    assert "control_group" in text


def test_a_daemon_that_does_not_answer_times_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen()  # connections queue up, nobody ever reads them
        code, out, err = status_cli(capsys, "--socket", str(path), "--timeout", "0.3")
    assert (code, out) == (5, "")
    assert err == f"pingu did not answer within 0.3 s on control socket {path}\n"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"garbage\n", "not JSON"),
        (b"[1, 2]\n", "unexpected reply"),
        (b'{"ok": true, "status": 42}\n', "no status document"),
        (b'{"ok": false, "error": "busy"}\n', "with an error: busy"),
        (None, "without a reply"),
    ],
)
def test_garbage_replies_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reply: bytes | None, message: str
) -> None:
    path = tmp_path / "control.sock"
    with answering_with(path, reply):
        code, out, err = status_cli(capsys, "--socket", str(path))
    assert (code, out) == (1, "")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_status_of_the_wrong_shape_is_an_error_in_the_table_but_fine_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strange = b'{"ok": true, "status": {"uplinks": [42]}}\n'
    path = tmp_path / "control.sock"
    with answering_with(path, strange):
        code, _, err = status_cli(capsys, "--socket", str(path))
    assert code == 1
    assert "unexpected status document" in err
    with answering_with(path, strange):
        code, out, _ = status_cli(capsys, "--socket", str(path), "--json")
    assert code == 0
    assert json.loads(out) == {"uplinks": [42]}


# -- hostile input (issue 12) ------------------------------------------------------------

NOBODY = 65534


def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("makes directories of another user: needs root")


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777], ids=["0777", "0770", "1777"])
def test_a_socket_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """Whoever can write there could swap the socket for a symlink between its bind and
    its chmod/chown, and have root open up a file of its choice."""
    directory = tmp_path / "run"
    directory.mkdir()
    directory.chmod(mode)
    path = directory / "control.sock"
    with pytest.raises(ControlSocketError, match="writable by group or others") as refused:
        asyncio.run(ControlServer(str(path), status_document).start())
    assert "directory only root can write" in str(refused.value)
    assert os.listdir(directory) == []


def test_a_socket_under_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    root_only()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(ControlSocketError, match="owned by uid 65534"):
        asyncio.run(ControlServer(str(theirs / "pingu" / "control.sock"), status_document).start())
    assert not (theirs / "pingu").exists()


def test_setting_up_the_socket_never_acts_through_a_symlink(tmp_path: Path) -> None:
    """If the socket were replaced by a symlink between bind and chmod, the chmod must
    not land on the file it points to (here driven step by step)."""
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        info = os.lstat(path)
        path.unlink()
        path.symlink_to(secret)
        with pytest.raises(OSError, match="changed while it was set up"):
            control._give_out(str(path), os.getegid(), 0o660, (info.st_dev, info.st_ino))
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


@pytest.mark.parametrize("group", ["\u00b2", "a\u0000b", "4294967296", "9" * 5000])
def test_a_control_group_run_could_not_use_is_a_start_up_error_not_a_crash(
    tmp_path: Path, group: str
) -> None:
    server = ControlServer(str(tmp_path / "control.sock"), status_document, group)
    with pytest.raises(ControlSocketError, match="control_group"):
        asyncio.run(server.start())


def test_a_deeply_nested_request_gets_an_error_reply(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "control.sock"
    with serving(path):
        reply = request(path, b"[" * 4000 + b"\n")
        assert reply == {"ok": False, "error": 'request is not JSON; send {"command": "status"}'}
        assert request(path, b'{"command": "status"}\n')["ok"] is True
    assert "RecursionError" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_stopping_with_clients_connected_logs_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "control.sock"

    async def scenario() -> None:
        server = ControlServer(str(path), status_document)
        await server.start()
        clients = [await asyncio.open_unix_connection(str(path)) for _ in range(3)]
        await asyncio.sleep(0)  # their handlers are waiting for a request
        await server.close()
        for _, writer in clients:
            writer.close()
        # asyncio.run then cancels whatever is left, as the daemon's exit does.

    asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not path.exists()


@contextlib.contextmanager
def at_the_client_limit(path: Path) -> Iterator[None]:
    """A control server on `path` with MAX_CLIENTS silent clients connected."""
    with contextlib.ExitStack() as stack:
        loop = stack.enter_context(LoopThread())
        server = ControlServer(str(path), status_document)
        loop.run(server.start())
        stack.callback(loop.run, server.close())
        for _ in range(control.MAX_CLIENTS):
            sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            sock.connect(str(path))

        async def clients() -> int:
            return len(server._clients)

        for _ in range(int(WAIT_S / 0.01)):
            if loop.run(clients()) == control.MAX_CLIENTS:
                break
            threading.Event().wait(0.01)
        else:
            pytest.fail("the silent clients were not all accepted")
        yield


BUSY = "busy: too many clients at once; try again"


def test_a_status_at_the_client_limit_is_told_busy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "control.sock"
    with at_the_client_limit(path):
        code, out, err = status_cli(capsys, "--socket", str(path))
    assert (code, out) == (1, "")
    assert err == f"pingu answered on {path} with an error: {BUSY}\n"


def test_a_turned_away_client_slow_to_ask_still_gets_the_busy_reply(tmp_path: Path) -> None:
    """The issue's `Broken pipe`: the server answered busy and closed before the client
    had sent its request, so the client's send failed. It now reads the request first."""
    path = tmp_path / "control.sock"
    with at_the_client_limit(path), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as late:
        late.settimeout(WAIT_S)
        late.connect(str(path))
        # Slow to send its request: long enough for a server that does not wait for it
        # to answer and hang up (the poll ends then), too short for one that waits.
        hang_up = select.poll()
        hang_up.register(late, select.POLLRDHUP | select.POLLHUP)
        hang_up.poll(control.BUSY_READ_S / 2 * 1000)
        late.sendall(b'{"command": "status"}\n')
        data = b""
        while not data.endswith(b"\n"):
            chunk = late.recv(4096)
            if not chunk:
                break
            data += chunk
    assert json.loads(data) == {"ok": False, "error": BUSY}


def test_a_fifo_as_status_configuration_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "pingu", "status", "--config", str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"config {fifo}: cannot read the configuration file: it is a FIFO, not a regular file\n"
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"[" * 100_000 + b"\n", "not JSON"),
        (b'{"ok": true, "status": {"uplinks": [], "uptime_s": Infinity}}\n', "not JSON"),
        (b'{"ok": true, "status": {"uplinks": [], "uptime_s": NaN}}\n', "not JSON"),
        (b'{"ok": true, "status": {"uplinks": [], "uptime_s": 1e999}}\n', "not JSON"),
        (b'{"ok": true, "status": {"uplinks": [], "pid": ' + b"9" * 5000 + b"}}\n", "not JSON"),
    ],
    ids=["deep", "Infinity", "NaN", "1e999", "5000 digits"],
)
def test_hostile_replies_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reply: bytes, message: str
) -> None:
    path = tmp_path / "control.sock"
    with answering_with(path, reply):
        code, out, err = status_cli(capsys, "--socket", str(path))
    assert (code, out) == (1, "")
    assert message in err
    assert err.count("\n") == 1
    assert len(err) < 300
