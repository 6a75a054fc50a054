"""Other traffic for an uplink: a paced UDP sender, run inside a lab namespace.

``python -m bench.traffic --netns NS --to ADDR --port P --mbit 200 --seconds 30``
sends datagrams of ``--size`` bytes at about ``--mbit`` megabits per second (as fast as it
can when it cannot keep up) for ``--seconds``, then prints what it sent as JSON. It dies
with its parent."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence

from pingu.lab import _netns

BURST = 32  # datagrams between two looks at the clock


def blast(to: str, port: int, mbit: float, seconds: float, size: int) -> dict[str, float]:
    """Send for ``seconds``; returns datagrams and bytes sent and the achieved rate."""
    payload = os.urandom(size)
    bytes_per_s = mbit * 1e6 / 8
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.connect((to, port))
        start = time.monotonic()
        end = start + seconds
        now = start
        while now < end:
            for _ in range(BURST):
                try:
                    sock.send(payload)
                    sent += 1
                except OSError:  # ENOBUFS from a full queue: back off a little
                    break
            now = time.monotonic()
            ahead = sent * size / bytes_per_s - (now - start)
            if ahead > 0:
                time.sleep(min(ahead, end - now) if end > now else 0)
                now = time.monotonic()
    elapsed = max(now - start, 1e-9)
    return {
        "datagrams": sent,
        "bytes": sent * size,
        "seconds": elapsed,
        "mbit_per_s": sent * size * 8 / elapsed / 1e6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.traffic")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mbit", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--size", type=int, default=1400)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    _netns.die_with_parent(args.parent)
    _netns.enter(args.netns)
    result = blast(args.to, args.port, args.mbit, min(args.seconds, 600.0), args.size)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
