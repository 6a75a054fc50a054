"""The wire of a point-to-point uplink: copies IP packets between two tun devices that
live in different namespaces (no link layer, like PPP or a raw-IP LTE modem).

Run as ``python -m pingu.lab.relay --a NS:IF --b NS:IF``; both tun devices must exist
(persistent, created with ``ip tuntap add``). Attaching to a device raises its carrier.
SIGUSR1 takes the carrier of side A down (packets are then dropped both ways), SIGUSR2
brings it back; SIGTERM/SIGINT stop the relay, which detaches both devices.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import select
import signal
import struct
import sys
from types import FrameType

from pingu.lab import _netns

TUNSETIFF = 0x400454CA
TUNSETCARRIER = 0x400454E2
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65536

# Errors a write meets while the receiving side is down or congested: the packet is lost,
# as on a real line.
_LOST_ON_WRITE = {errno.EIO, errno.EAGAIN, errno.ENOBUFS, errno.EINVAL}


def open_tun(netns: str, ifname: str) -> int:
    """Attach to the persistent tun ``ifname`` of namespace ``netns``; returns its fd."""
    _netns.enter(netns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def set_carrier(fd: int, up: bool) -> None:
    """Raise or drop the carrier of the tun device behind ``fd``."""
    fcntl.ioctl(fd, TUNSETCARRIER, struct.pack("i", 1 if up else 0))


class Relay:
    """Copies packets between two tun fds until stopped."""

    def __init__(self, fd_a: int, fd_b: int) -> None:
        self.fd_a = fd_a
        self.fd_b = fd_b
        self.carrier = True

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            self.carrier = False
            set_carrier(self.fd_a, False)
        elif signum == signal.SIGUSR2:
            self.carrier = True
            set_carrier(self.fd_a, True)
        else:
            # Raise rather than set a flag: select() would otherwise sleep out its timeout.
            raise SystemExit(0)

    def run(self) -> None:
        peers = {self.fd_a: self.fd_b, self.fd_b: self.fd_a}
        while True:
            try:
                readable, _, _ = select.select(list(peers), [], [], 0.5)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select
                continue
            for fd in readable:
                self._forward(fd, peers[fd])

    def _forward(self, src: int, dst: int) -> None:
        for _ in range(64):  # drain a burst, but let the other side have its turn
            try:
                packet = os.read(src, MAX_PACKET)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EIO:  # the device went down under us
                    return
                raise
            if not packet or not self.carrier:
                continue
            try:
                os.write(dst, packet)
            except OSError as exc:
                if exc.errno not in _LOST_ON_WRITE:
                    raise


def _side(text: str) -> tuple[str, str]:
    netns, sep, ifname = text.partition(":")
    if not sep or not netns or not ifname:
        raise argparse.ArgumentTypeError(f"expected NETNS:IFNAME, got {text!r}")
    return netns, ifname


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pingu.lab.relay", description=__doc__)
    parser.add_argument("--a", type=_side, required=True, help="NETNS:IFNAME of side A")
    parser.add_argument("--b", type=_side, required=True, help="NETNS:IFNAME of side B")
    parser.add_argument("--parent", type=int, default=None, help="exit when this pid goes")
    args = parser.parse_args(argv)
    _netns.die_with_parent(args.parent)
    handled = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)
    # Hold the control signals until their handlers exist: the lab may signal as soon as
    # it sees the carrier, which rises inside open_tun.
    signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    fd_a = open_tun(*args.a)
    fd_b = open_tun(*args.b)
    relay = Relay(fd_a, fd_b)
    for signum in handled:
        signal.signal(signum, relay.on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)
    try:
        relay.run()
    finally:
        os.close(fd_a)
        os.close(fd_b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
