"""Traffic that lives through a failover: the programs whose fate pingu's flow ending
decides, run as processes in the lab's namespaces, each writing what happened to it as
JSON lines (one event a line, timed with ``time.monotonic()``, the clock every process of
the machine shares) for the tests and the bench to read.

- ``server`` (in the internet): echoes UDP datagrams and TCP lines on one port, in both
  families, and records the source of each datagram and line, and every accept: what
  tells which uplink a flow reaches the internet through.
- ``udp-tunnel`` (in the LAN): a WireGuard-like flow, one socket with one fixed source
  port for its whole life, sending a numbered datagram every few milliseconds: it
  refreshes its conntrack entry forever and never re-creates it.
- ``tcp-client`` (in the LAN, or on the box itself): one long-lived connection that sends
  a numbered line and waits for its echo, again and again, with no timeout of its own
  (blocking calls, no keepalive, no TCP_USER_TIMEOUT): it notices only socket errors
  (a reset, an abort), and then reconnects.
- ``new-connections`` (in the LAN): a new short connection every few milliseconds, each
  with a timeout of its own, to see which succeed while traffic moves.
- ``listener`` (on the box): a listening socket bound to an uplink's address, which must
  survive whatever pingu ends; it echoes what it accepts.

Every process enters its namespace before it opens a socket, dies with its parent, and
ends by itself after ``--seconds``: nothing outlives a test. :class:`Traffic` starts them
for a lab, waits until each is ready, reads their records, and stops them all.

    with Lab(["wan1", "wan2"]) as lab, Lan(lab, "snat") as lan, Traffic(lab, lan) as t:
        server = t.server()
        tunnel = t.udp_tunnel()
        tunnel.wait_reply()
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

from pingu.lab import _netns, _process
from pingu.lab.errors import LabError
from pingu.lab.lab import Lab
from pingu.lab.lan import Lan

PORT = 4000  # the server's, TCP and UDP
TUNNEL_PORT = 51820  # the tunnel's fixed source port (WireGuard's)
LISTEN_PORT = 4022
LIFETIME_S = 300.0  # what a tool lives at most, unless told
MAX_LIFETIME_S = 1800.0
READY_TIMEOUT_S = 15.0
WAIT_S = 15.0
POLL_S = 0.02
MAX_LINE = 256

Event = dict[str, Any]


# ====================================================================== the processes


class Recorder:
    """Appends events to the tool's log, one JSON object a line, each flushed at once."""

    def __init__(self, path: str) -> None:
        self._file: TextIO = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the tool)
        self._lock = threading.Lock()

    def __call__(self, ev: str, **fields: Any) -> None:
        line = json.dumps({"t": time.monotonic(), "ev": ev, **fields})
        with self._lock:
            self._file.write(line + "\n")


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _error_name(error: OSError) -> str:
    return errno.errorcode.get(error.errno or 0, type(error).__name__)


def serve(record: Recorder, addresses: Sequence[str], port: int) -> None:
    """The internet's end: echo UDP and TCP on ``port`` of each of ``addresses``, recording
    each datagram's and line's source, every accept and every end of a connection.

    Bound to each address rather than to any: a UDP answer from a socket bound to any
    leaves from the address the route gives (the transfer link's), which no NAT entry
    expects."""
    selector = selectors.DefaultSelector()
    for address in addresses:
        family = _family(address)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        for sock in (udp, tcp):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.setblocking(False)
        tcp.listen(64)
        selector.register(udp, selectors.EVENT_READ, "udp")
        selector.register(tcp, selectors.EVENT_READ, "listen")
    buffers: dict[socket.socket, bytes] = {}
    record("ready", port=port)
    while True:
        for key, _ in selector.select(1.0):
            ready = key.fileobj
            if not isinstance(ready, socket.socket):
                continue
            if key.data == "udp":
                _echo_datagrams(record, ready)
            elif key.data == "listen":
                _accept(record, selector, ready, buffers)
            else:
                _echo_lines(record, selector, ready, buffers)


def _echo_datagrams(record: Recorder, sock: socket.socket) -> None:
    for _ in range(64):
        try:
            data, peer = sock.recvfrom(MAX_LINE)
        except BlockingIOError:
            return
        tag, seq = _tagged(data)
        record("udp", src=str(ipaddress.ip_address(peer[0])), sport=peer[1], tag=tag, seq=seq)
        try:
            sock.sendto(data, peer)
        except OSError as error:  # no way back: the answer is lost, as out there
            record("udp-reply-failed", src=peer[0], error=_error_name(error))


def _accept(
    record: Recorder,
    selector: selectors.BaseSelector,
    listening: socket.socket,
    buffers: dict[socket.socket, bytes],
) -> None:
    try:
        conn, peer = listening.accept()
    except BlockingIOError:
        return
    conn.setblocking(False)
    selector.register(conn, selectors.EVENT_READ, peer[:2])
    buffers[conn] = b""
    record("accept", src=str(ipaddress.ip_address(peer[0])), sport=peer[1])


def _echo_lines(
    record: Recorder,
    selector: selectors.BaseSelector,
    conn: socket.socket,
    buffers: dict[socket.socket, bytes],
) -> None:
    host, port = selector.get_key(conn).data
    src = str(ipaddress.ip_address(host))
    try:
        data = conn.recv(4096)
    except BlockingIOError:
        return
    except OSError as error:
        data, ended = b"", _error_name(error)
    else:
        ended = "closed"
    if not data:
        record("tcp-end", src=src, sport=port, how=ended)
        selector.unregister(conn)
        del buffers[conn]
        conn.close()
        return
    lines = (buffers[conn] + data).split(b"\n")
    buffers[conn] = lines.pop()[-MAX_LINE:]
    for line in lines:
        tag, seq = _tagged(line)
        record("tcp", src=src, sport=port, tag=tag, seq=seq)
        try:
            conn.send(line + b"\n")
        except OSError:
            continue  # its end comes as a read event


def _tagged(data: bytes) -> tuple[str | None, int | None]:
    """A message's sender and number: every client sends ``b"TAG SEQ\\n"``, its tag
    telling the server which tool a message came from, whatever NAT did to its port."""
    tag, _, seq = data.decode(errors="replace").strip().rpartition(" ")
    try:
        return tag or None, int(seq)
    except ValueError:
        return tag or None, None


def _message(tag: str, seq: int) -> bytes:
    return f"{tag} {seq}\n".encode()


@dataclass(frozen=True)
class Peer:
    """Where a client sends (the server's address and port), and the tag it sends under."""

    tag: str
    to: str
    port: int


def udp_tunnel(record: Recorder, peer: Peer, sport: int, every_s: float) -> None:
    """One socket, one source port, a numbered datagram every ``every_s``; replies
    recorded as they come. Never re-created, whatever happens (a tunnel's way)."""
    family = _family(peer.to)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
    sock.connect((peer.to, peer.port))
    sock.setblocking(False)
    record("ready", sport=sport)
    seq, due = 0, time.monotonic()
    while True:
        now = time.monotonic()
        if now >= due:
            seq += 1
            try:
                sock.send(_message(peer.tag, seq))
                record("sent", seq=seq)
            except OSError as error:
                record("send-error", seq=seq, error=_error_name(error))
            due = max(due + every_s, now)
            continue
        ready, _, _ = select.select([sock], [], [], max(0.0, due - now))
        if ready:
            _read_replies(record, sock)


def _read_replies(record: Recorder, sock: socket.socket) -> None:
    for _ in range(64):
        try:
            data = sock.recv(MAX_LINE)
        except BlockingIOError:
            return
        except OSError as error:  # an ICMP error queued on the socket
            record("recv-error", error=_error_name(error))
            return
        record("reply", seq=_tagged(data)[1])


def tcp_client(record: Recorder, peer: Peer, every_s: float, retry_s: float) -> None:
    """One connection at a time, no timeout anywhere: send a line, wait for its echo, and
    so on; a socket error is recorded, and a new connection made after ``retry_s``."""
    record("ready")
    seq = 0
    while True:
        sock = socket.socket(_family(peer.to), socket.SOCK_STREAM)
        during = "connect"
        try:
            sock.connect((peer.to, peer.port))
            local = sock.getsockname()
            record("connected", local=str(ipaddress.ip_address(local[0])), lport=local[1])
            reader = sock.makefile("rb")
            while True:
                seq += 1
                during = "send"
                sock.sendall(_message(peer.tag, seq))
                during = "recv"
                line = reader.readline(MAX_LINE)
                if not line:
                    raise ConnectionResetError(errno.ECONNRESET, "closed by the peer")
                record("reply", seq=_tagged(line)[1])
                time.sleep(every_s)
        except OSError as error:
            record("error", during=during, error=_error_name(error))
        finally:
            sock.close()
        time.sleep(retry_s)


def new_connections(record: Recorder, peer: Peer, every_s: float, timeout_s: float) -> None:
    """A new connection every ``every_s`` (each on its own thread, so that one hanging does
    not delay the next), each given ``timeout_s`` to connect and get its echo."""
    record("ready")
    attempt, due = 0, time.monotonic()
    while True:
        attempt += 1
        worker = threading.Thread(
            target=_one_connection, args=(record, peer, timeout_s, attempt), daemon=True
        )
        worker.start()
        due += every_s
        time.sleep(max(0.0, due - time.monotonic()))


def _one_connection(record: Recorder, peer: Peer, timeout_s: float, attempt: int) -> None:
    started = time.monotonic()
    local = None
    try:
        with socket.create_connection((peer.to, peer.port), timeout=timeout_s) as sock:
            local = str(ipaddress.ip_address(sock.getsockname()[0]))
            sock.sendall(_message(peer.tag, attempt))
            if not sock.makefile("rb").readline(MAX_LINE):
                raise ConnectionResetError(errno.ECONNRESET, "closed by the peer")
    except OSError as error:
        name = "ETIMEDOUT" if isinstance(error, TimeoutError) else _error_name(error)
        record("attempt", n=attempt, started=started, ok=False, error=name, local=local)
    else:
        record("attempt", n=attempt, started=started, ok=True, error=None, local=local)


def listen(record: Recorder, bind: str, port: int) -> None:
    """A listening socket on ``bind``: it accepts and echoes one line a connection."""
    sock = socket.socket(_family(bind), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(16)
    record("ready", bind=bind, port=port)
    while True:
        try:
            conn, peer = sock.accept()
        except OSError as error:
            record("error", during="accept", error=_error_name(error))
            time.sleep(0.1)
            continue
        record("accept", src=str(ipaddress.ip_address(peer[0])), sport=peer[1])
        with conn:
            conn.settimeout(5.0)
            try:
                line = conn.makefile("rb").readline(MAX_LINE)
                conn.sendall(line)
            except OSError:
                continue


def _stop(_signum: int, _frame: FrameType | None) -> None:
    # Raise rather than set a flag: the tools block in calls without timeouts.
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pingu.lab.traffic", description=__doc__)
    parser.add_argument("tool", choices=sorted(TOOLS))
    parser.add_argument("--netns", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--tag", default="")
    parser.add_argument("--to", default=None)
    parser.add_argument("--bind", action="append", default=[])
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--sport", type=int, default=TUNNEL_PORT)
    parser.add_argument("--every-ms", type=float, default=20.0)
    parser.add_argument("--retry-ms", type=float, default=20.0)
    parser.add_argument("--timeout-ms", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=LIFETIME_S)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    _netns.die_with_parent(args.parent)
    _netns.enter(args.netns)  # before any socket: never one in the root namespace
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGALRM, _stop)
    signal.setitimer(signal.ITIMER_REAL, min(max(args.seconds, 0.1), MAX_LIFETIME_S))
    record = Recorder(args.log)
    try:
        TOOLS[args.tool](record, args)
    except SystemExit:
        record("stopped")
        raise
    return 0


def _peer(args: argparse.Namespace) -> Peer:
    if not args.to:
        raise SystemExit(f"{args.tool}: --to is required")
    return Peer(args.tag, args.to, args.port)


TOOLS: dict[str, Callable[[Recorder, argparse.Namespace], None]] = {
    "server": lambda r, a: serve(r, a.bind, a.port),
    "udp-tunnel": lambda r, a: udp_tunnel(r, _peer(a), a.sport, a.every_ms / 1000),
    "tcp-client": lambda r, a: tcp_client(r, _peer(a), a.every_ms / 1000, a.retry_ms / 1000),
    "new-connections": lambda r, a: new_connections(
        r, _peer(a), a.every_ms / 1000, a.timeout_ms / 1000
    ),
    "listener": lambda r, a: listen(r, a.bind[0], a.port),
}


# ====================================================================== the test's side


class Tool:
    """One running tool: its process and its records."""

    def __init__(
        self, kind: str, name: str, ns: str, process: subprocess.Popen[bytes], log: Path
    ) -> None:
        self.kind = kind
        self.name = name
        self.ns = ns
        self.process = process
        self.log = log

    def events(self, ev: str | None = None, *, after: float = 0.0) -> list[Event]:
        """Its records so far (of kind ``ev``, at or after monotonic time ``after``)."""
        found: list[Event] = []
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return found
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:  # the line being written
                continue
            if (ev is None or event["ev"] == ev) and event["t"] >= after:
                found.append(event)
        return found

    def wait(
        self,
        ev: str,
        check: Callable[[Event], bool] = lambda _: True,
        *,
        after: float = 0.0,
        timeout: float = WAIT_S,
        what: str = "",
    ) -> Event:
        """The first record of kind ``ev`` at or after ``after`` that passes ``check``,
        waiting at most ``timeout``; fails saying ``what`` it waited for."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events(ev, after=after):
                if check(event):
                    return event
            if self.process.poll() is not None:
                raise LabError(f"{self.name} exited ({self.process.returncode}) " + self._tail())
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what or ev} from {self.name}; "
                    + self._tail()
                )
            time.sleep(POLL_S)

    def alive(self) -> bool:
        return self.process.poll() is None

    def _tail(self) -> str:
        try:
            return "last records: " + " | ".join(self.log.read_text().splitlines()[-8:])
        except FileNotFoundError:
            return "no records"


class Server(Tool):
    """The internet's echo server: what reached it, from whom."""

    def received(
        self,
        tag: str | None = None,
        *,
        src: str | None = None,
        after: float = 0.0,
        kind: str | None = None,
    ) -> list[Event]:
        """The datagrams and lines (``kind`` "udp" or "tcp": one only) of tool ``tag``
        that reached it from address ``src``, at or after ``after``, oldest first."""
        return [
            e
            for e in self.events(after=after)
            if e["ev"] in ((kind,) if kind else ("udp", "tcp"))
            and (tag is None or e.get("tag") == tag)
            and (src is None or e["src"] == src)
        ]

    def wait_from(
        self, tool: Tool, src: str, *, after: float = 0.0, timeout: float = WAIT_S
    ) -> Event:
        """The first message of ``tool`` from ``src`` at or after ``after``, waited for."""
        return self.wait(
            "udp" if tool.kind == "udp-tunnel" else "tcp",
            lambda e: e.get("tag") == tool.name and e["src"] == src,
            after=after,
            timeout=timeout,
            what=f"a message of {tool.name} from {src}",
        )


class Traffic:
    """Starts the traffic tools in ``lab`` (and ``lan``) and stops them all on exit."""

    def __init__(self, lab: Lab, lan: Lan | None = None, *, lifetime_s: float = LIFETIME_S):
        self.lab = lab
        self.lan = lan
        self.lifetime_s = lifetime_s
        self.tools: list[Tool] = []
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-traffic-"))

    def __enter__(self) -> Traffic:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every tool (SIGTERM, then SIGKILL) and remove their records."""
        with _process.SignalsDeferred():
            _process.stop_processes([t.process for t in self.tools])
            shutil.rmtree(self._workdir, ignore_errors=True)

    def stop(self, *tools: Tool) -> None:
        """Stop some tools before the others (their records stay readable)."""
        _process.stop_processes([t.process for t in tools])

    @property
    def target(self) -> str:
        return self.lab.targets[0]

    @property
    def target6(self) -> str:
        return self.lab.targets6[0]

    def _lan(self) -> Lan:
        if self.lan is None:
            raise LabError("this tool runs in the LAN: give Traffic a Lan")
        return self.lan

    def start(self, tool: str, ns: str, *args: str, name: str | None = None) -> Tool:
        """Start ``tool`` in namespace ``ns`` (its full name) and wait until it is ready;
        ``name`` (unique: it tags what it sends) defaults to the tool's with a number."""
        name = name or f"{tool}-{len(self.tools) + 1}"
        if any(t.name == name for t in self.tools) or " " in name:
            raise ValueError(f"tool names must be unique words: {name!r}")
        log = self._workdir / f"{name}.jsonl"
        argv = [sys.executable, "-m", "pingu.lab.traffic", tool, "--netns", ns, "--log", str(log)]
        argv += [*args, "--tag", name, "--seconds", str(self.lifetime_s)]
        argv += ["--parent", str(os.getpid())]
        with open(self._workdir / f"{name}.out", "ab") as output:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=_process.helper_env(),
            )
        kind = Server if tool == "server" else Tool
        started = kind(tool, name, ns, process, log)
        self.tools.append(started)
        try:
            started.wait("ready", timeout=READY_TIMEOUT_S)
        except (AssertionError, LabError) as error:
            output_text = (self._workdir / f"{name}.out").read_text(errors="replace")[-2000:]
            raise LabError(f"{name} did not start: {error}; output: {output_text}") from None
        return started

    def server(self, port: int = PORT) -> Server:
        """The echo server in the internet namespace, on every target of both families."""
        bind = [arg for a in (*self.lab.targets, *self.lab.targets6) for arg in ("--bind", a)]
        server = self.start(
            "server", self.lab.internet_ns, *bind, "--port", str(port), name="server"
        )
        assert isinstance(server, Server)
        return server

    def udp_tunnel(
        self,
        name: str = "tunnel",
        *,
        to: str | None = None,
        sport: int = TUNNEL_PORT,
        every_ms: float = 20.0,
    ) -> Tool:
        """The LAN's tunnel-like UDP flow to the server (its fixed source port ``sport``)."""
        args = ["--to", to or self.target, "--sport", str(sport), "--every-ms", str(every_ms)]
        return self.start("udp-tunnel", self._lan().client_ns, *args, name=name)

    def tcp_client(
        self, name: str, where: str, *, to: str | None = None, every_ms: float = 20.0
    ) -> Tool:
        """A long-lived TCP connection to the server from ``where``: "lan" (through the
        NAT) or "box" (the box's own, in the daemon namespace, from an uplink's address)."""
        if where not in ("lan", "box"):
            raise ValueError(f"where must be 'lan' or 'box', got {where!r}")
        ns = self._lan().client_ns if where == "lan" else self.lab.daemon_ns
        args = ["--to", to or self.target, "--every-ms", str(every_ms)]
        return self.start("tcp-client", ns, *args, name=name)

    def new_connections(
        self,
        name: str = "new",
        *,
        to: str | None = None,
        every_ms: float = 50.0,
        timeout_ms: float = 1000.0,
    ) -> Tool:
        """New short connections from the LAN to the server, one every ``every_ms``."""
        args = ["--to", to or self.target, "--every-ms", str(every_ms)]
        args += ["--timeout-ms", str(timeout_ms)]
        return self.start("new-connections", self._lan().client_ns, *args, name=name)

    def listener(self, bind: str, port: int = LISTEN_PORT, name: str = "listener") -> Tool:
        """A listening socket on the box (the daemon namespace), bound to ``bind``."""
        args = ["--bind", bind, "--port", str(port)]
        return self.start("listener", self.lab.daemon_ns, *args, name=name)


if __name__ == "__main__":
    sys.exit(main())
