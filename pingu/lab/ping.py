"""A small ICMP and ICMPv6 echo client for lab tests (the lab hosts have no ``ping`` binary,
and unprivileged ICMP sockets are off): raw socket, optionally bound to one uplink; the
target's family chooses ICMP or ICMPv6.

``python -m pingu.lab.ping [--netns NS] [--interface IF] [--count N] TARGET`` prints one
JSON object: the target, how many echoes were sent, the round-trip time in ms of each
answered sequence number, and the send errors.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from pingu.lab import _netns, icmp

_STAMP = struct.Struct("!8sd")
_MAGIC = b"pgl-ping"


@dataclass
class PingResult:
    """The outcome of a run of echoes."""

    target: str
    sent: int
    rtt_ms: dict[int, float] = field(default_factory=dict)  # by sequence number
    errors: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.rtt_ms)

    @property
    def lost(self) -> int:
        return self.sent - self.received

    def to_json(self) -> str:
        return json.dumps(
            {"target": self.target, "sent": self.sent, "rtt_ms": self.rtt_ms, "errors": self.errors}
        )

    @classmethod
    def from_json(cls, text: str) -> PingResult:
        data = json.loads(text)
        return cls(
            target=data["target"],
            sent=data["sent"],
            rtt_ms={int(k): float(v) for k, v in data["rtt_ms"].items()},
            errors=list(data["errors"]),
        )


def ping(
    target: str,
    *,
    interface: str | None = None,
    source: str | None = None,
    count: int = 1,
    interval: float = 0.1,
    timeout: float = 1.0,
) -> PingResult:
    """Send ``count`` echoes to ``target`` from the current namespace, ``interval`` s apart,
    and wait up to ``timeout`` s after the last one for the replies."""
    ident = (os.getpid() ^ int(time.monotonic() * 1000)) & 0xFFFF
    result = PingResult(target=target, sent=0)
    sent_at: dict[int, float] = {}
    family = icmp.family_of(target)
    request, reply = icmp.echo_kinds(family)
    with icmp.open_raw_socket(family, only=reply) as sock:
        if interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        if source:
            sock.bind((source, 0))
        next_send = time.monotonic()
        deadline = next_send + (count - 1) * interval + timeout
        seq = 0
        while time.monotonic() < deadline and len(result.rtt_ms) < count:
            now = time.monotonic()
            if seq < count and now >= next_send:
                seq += 1
                payload = _STAMP.pack(_MAGIC, now) + bytes(range(32))
                message = icmp.echo_message(request, ident, seq, payload)
                result.sent += 1
                sent_at[seq] = now
                try:
                    sock.sendto(message, (target, 0))
                except OSError as exc:
                    result.errors.append(f"seq {seq}: {exc.strerror or exc}")
                next_send += interval
            wake = deadline if seq >= count else min(deadline, next_send)
            readable, _, _ = select.select([sock], [], [], max(0.0, wake - time.monotonic()))
            if readable:
                _collect(sock, (icmp.canonical(target), reply, ident), sent_at, result)
    return result


def _collect(
    sock: socket.socket,
    expected: tuple[str, int, int],
    sent_at: dict[int, float],
    result: PingResult,
) -> None:
    """Read the replies queued on ``sock``; ``expected`` is (target, reply type, ident)."""
    target, reply, ident = expected
    while True:
        try:
            echo = icmp.receive_echo(sock)
        except BlockingIOError:
            return
        now = time.monotonic()
        if (
            echo is None
            or echo.kind != reply
            or echo.ident != ident
            or echo.src != target
            or echo.seq not in sent_at
            or echo.seq in result.rtt_ms
            or not echo.payload.startswith(_MAGIC)
        ):
            continue
        result.rtt_ms[echo.seq] = (now - sent_at[echo.seq]) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pingu.lab.ping", description=__doc__)
    parser.add_argument("target")
    parser.add_argument("--netns", help="namespace to ping from (default: the current one)")
    parser.add_argument("--interface", help="send through this interface only")
    parser.add_argument("--source", help="source address")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between echoes")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait after the last")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    if args.netns:
        _netns.enter(args.netns)
    result = ping(
        args.target,
        interface=args.interface,
        source=args.source,
        count=args.count,
        interval=args.interval,
        timeout=args.timeout,
    )
    print(result.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
