"""The probe targets' host: answers ICMP and ICMPv6 echo requests to the target addresses
itself, so that the lab can drop a deterministic share of them and delay the rest.

Run as ``python -m pingu.lab.responder --netns NS --control PATH --target ADDR...`` in a
namespace whose kernel ignores echoes of both families (``net.ipv4.icmp_echo_ignore_all=1``,
``net.ipv6.icmp.echo_ignore_all=1``). Control it with :class:`ResponderControl` (one JSON
line per request on the Unix socket PATH). Targets of both families are alike: each has its
own loss pattern and delay, and every echo that reaches one is logged.

Loss pattern: with share ``s`` set for a target, the echoes that reach it are numbered
n = 1, 2, ... from the moment ``set_loss`` was called, and echo n is dropped exactly when
``floor(n*s) > floor((n-1)*s)``. So 20 % drops the 5th, 10th, 15th, ...; 50 % every 2nd;
30 % the 4th, 7th, 10th; and of any first k echoes exactly ``floor(k*s)`` are dropped.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import heapq
import json
import math
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from types import FrameType
from typing import Any

from pingu.lab import _netns, icmp
from pingu.lab.errors import LabError

LOG_LIMIT = 100_000
MAX_REQUEST = 65536


def loss_fraction(share: float) -> Fraction:
    """``share`` (0..1) as an exact fraction, so that 0.2 means exactly 1 in 5."""
    if not 0 <= share <= 1:
        raise ValueError(f"loss share must be within 0..1, got {share!r}")
    return Fraction(str(share)).limit_denominator(1_000_000)


def is_dropped(n: int, share: Fraction) -> bool:
    """Whether echo number ``n`` (1-based) is dropped under loss ``share``."""
    return math.floor(n * share) > math.floor((n - 1) * share)


@dataclass
class TargetState:
    """What a target does to the echoes it receives."""

    loss: Fraction = Fraction(0)
    delay_s: float = 0.0
    counted: int = 0  # echoes received since the last set_loss


@dataclass(order=True)
class _Pending:
    due: float
    order: int
    reply: icmp.Echo = field(compare=False)


class Responder:
    """Answers echoes to its targets; all I/O on one select loop, nothing blocks."""

    def __init__(self, targets: list[str], control_path: str) -> None:
        self.targets = {icmp.canonical(t): TargetState() for t in targets}
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_LIMIT)
        self.pending: list[_Pending] = []
        self.order = 0
        self.rx = icmp.open_raw_socket(socket.AF_INET, only=icmp.ICMP_ECHO_REQUEST)
        # One ICMPv6 socket both ways: it receives the requests (with their destination)
        # and sends the replies from whichever target was asked.
        self.rx6 = icmp.open_raw_socket(socket.AF_INET6, only=icmp.ICMPV6_ECHO_REQUEST)
        for sock in (self.rx, self.rx6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.senders = {socket.AF_INET: self.tx, socket.AF_INET6: self.rx6}
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.bind(control_path)
        self.control.listen(16)
        self.control.setblocking(False)
        self.clients: dict[socket.socket, bytes] = {}

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        # Raise rather than set a flag: select() would otherwise sleep out its timeout.
        raise SystemExit(0)

    def run(self) -> None:
        while True:
            timeout = 0.5
            if self.pending:
                timeout = max(0.0, min(timeout, self.pending[0].due - time.monotonic()))
            listening = [self.rx, self.rx6, self.control, *self.clients]
            readable, _, _ = select.select(listening, [], [], timeout)
            for sock in readable:
                if sock in (self.rx, self.rx6):
                    self._receive_echoes(sock)
                elif sock is self.control:
                    self._accept()
                else:
                    self._read_client(sock)
            self._send_due()

    def _receive_echoes(self, sock: socket.socket) -> None:
        for _ in range(256):
            try:
                echo = icmp.receive_echo(sock)
            except BlockingIOError:
                return
            self._on_echo(echo, time.monotonic())

    def _on_echo(self, echo: icmp.Echo | None, now: float) -> None:
        if echo is None or echo.kind not in (icmp.ICMP_ECHO_REQUEST, icmp.ICMPV6_ECHO_REQUEST):
            return
        state = self.targets.get(echo.dst)
        if state is None:
            return
        state.counted += 1
        dropped = is_dropped(state.counted, state.loss)
        self.log.append(
            {
                "time": now,
                "src": echo.src,
                "dst": echo.dst,
                "ident": echo.ident,
                "seq": echo.seq,
                "answered": not dropped,
            }
        )
        if dropped:
            return
        _request, kind = icmp.echo_kinds(icmp.family_of(echo.dst))
        reply = icmp.Echo(echo.dst, echo.src, kind, echo.ident, echo.seq, echo.payload)
        self.order += 1
        heapq.heappush(self.pending, _Pending(now + state.delay_s, self.order, reply))

    def _send_due(self) -> None:
        now = time.monotonic()
        while self.pending and self.pending[0].due <= now:
            reply = heapq.heappop(self.pending).reply
            # No route back (an upstream cut, say): the reply is lost, as it would be.
            with contextlib.suppress(OSError):
                icmp.send_echo(self.senders[icmp.family_of(reply.dst)], reply)

    def _accept(self) -> None:
        try:
            conn, _ = self.control.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self.clients[conn] = b""

    def _read_client(self, conn: socket.socket) -> None:
        try:
            chunk = conn.recv(MAX_REQUEST)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buffer = self.clients[conn] + chunk
        if chunk and b"\n" not in buffer and len(buffer) < MAX_REQUEST:
            self.clients[conn] = buffer
            return
        del self.clients[conn]
        try:
            if b"\n" in buffer:
                answer = self._handle(buffer.split(b"\n", 1)[0])
                conn.settimeout(2.0)
                conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            return {"ok": True, **self._apply(request)}
        except (ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _selected(self, target: str | None) -> list[TargetState]:
        if target is None:
            return list(self.targets.values())
        state = self.targets.get(icmp.canonical(target))
        if state is None:
            raise KeyError(f"unknown target {target}")
        return [state]

    def _apply(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "ping":
            return {}
        if op == "set_loss":
            share = loss_fraction(float(request["share"]))
            for state in self._selected(request.get("target")):
                state.loss = share
                state.counted = 0
            return {}
        if op == "set_delay":
            delay_ms = float(request["ms"])
            if delay_ms < 0:
                raise ValueError(f"delay must be >= 0 ms, got {delay_ms}")
            for state in self._selected(request.get("target")):
                state.delay_s = delay_ms / 1000
            return {}
        if op == "log":
            echoes = list(self.log)
            if request.get("clear"):
                self.log.clear()
            return {"echoes": echoes}
        raise ValueError(f"unknown op {op!r}")


class ResponderControl:
    """Client side of the responder's control socket (used by :class:`pingu.lab.Lab`)."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, op: str, **params: Any) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.sendall(json.dumps({"op": op, **params}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        answer: dict[str, Any] = json.loads(data)
        if not answer.get("ok"):
            raise LabError(f"responder refused {op}: {answer.get('error')}")
        return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pingu.lab.responder", description=__doc__)
    parser.add_argument("--netns", required=True, help="namespace holding the targets")
    parser.add_argument("--control", required=True, help="path of the control socket")
    parser.add_argument("--target", action="append", required=True, help="address to answer for")
    parser.add_argument("--parent", type=int, default=None, help="exit when this pid goes")
    args = parser.parse_args(argv)
    _netns.die_with_parent(args.parent)
    _netns.enter(args.netns)
    responder = Responder(args.target, args.control)
    signal.signal(signal.SIGTERM, responder.stop)
    signal.signal(signal.SIGINT, responder.stop)
    try:
        responder.run()
    finally:
        sockets = (responder.rx, responder.rx6, responder.tx, responder.control)
        for sock in (*sockets, *responder.clients):
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
