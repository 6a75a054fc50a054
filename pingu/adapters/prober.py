"""The prober port on packet sockets: one round of ICMP or ICMPv6 echoes through a chosen
gateway on one uplink, whatever the routing table says.

How a round works (the same for both families; what differs, the packets, is in
:data:`icmp_packets.IPV4_PACKETS` and :data:`icmp_packets.IPV6_PACKETS`):

- The uplink is checked first, sending nothing when it cannot be used: interface gone,
  administratively down, carrier down (no ``IFF_RUNNING``), no address of the family to
  send from, or (on an Ethernet-like uplink) no gateway. These are read with ioctls on a
  socket and from ``/proc/thread-self/net``, so they answer for the network namespace of
  the calling thread, unlike ``/sys/class/net``, which shows the namespace sysfs was
  mounted in. IPv4 sends from ``probe.source`` or else the interface's primary address;
  IPv6 only from ``probe.source`` (the core chose it among the uplink's global
  addresses), and only if the interface holds it and it is not tentative or failed
  duplicate address detection (a host may not send from such an address).
- Ethernet-like uplinks: the gateway's MAC is resolved with our own question on that
  interface, ARP for IPv4, an ICMPv6 neighbour solicitation to the gateway's
  solicited-node group for IPv6 (the gateway is usually link-local there), cached per
  (ifindex, gateway) and forgotten when a round gets no answer at all; each echo leaves
  as a frame to that MAC. Point-to-point uplinks (PPP, tun, raw-IP modems): each echo
  leaves as a bare IP packet. Both go through one AF_PACKET SOCK_DGRAM socket bound to
  the uplink and the family's ethertype, so neither routes nor reverse-path filters are
  consulted (there need not be any route of that family at all); the same socket
  receives the replies before the IP stack (and rp_filter, or netfilter's rpfilter) sees
  them.
- That socket carries a classic BPF filter written by hand (:mod:`icmp_packets`): only
  unfragmented echo replies to our address with the round's random identifier wake the
  event loop (for IPv6: ICMPv6 right after the IPv6 header, no extension header). The
  replies are then matched in Python: from a target, the echo's sequence number, the
  round's random 16-byte cookie followed by that sequence number, within the timeout; a
  duplicate counts once, a late reply stays a loss.
- Delay = the kernel's receive timestamp of the reply (SO_TIMESTAMPNS, CLOCK_REALTIME)
  minus CLOCK_REALTIME read immediately before ``sendto`` in the same callback: neither
  end includes the event loop's lag. (A wall-clock step during the round is detected and
  falls back to monotonic times; see :func:`icmp_packets.reply_delay_ms`.)
- Targets are probed concurrently, ``count`` echoes each, ``interval_ms`` apart. A target
  stops as soon as its own verdict is certain (it lost more than ``max_lost``, or even the
  worst the rest could bring keeps it passing), and the whole round stops as soon as its
  quorum (``min_hosts_up``) is certain either way (early verdict; the rules are the
  domain's, :func:`pingu.domain.verdict.target_outlook`). Echoes still in flight then are
  reported as abandoned, not lost: nobody waited for them.
- Everything runs on the event loop: non-blocking sockets, ``add_reader`` and timers;
  every socket is closed when its round ends. Rounds of both families may run at once on
  one uplink: each has its own socket, identifier and filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import logging
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pingu.adapters.bpf import Insn, attach_filter
from pingu.adapters.icmp_packets import (
    ARPHRD_ETHER,
    COOKIE_SIZE,
    IPV4_PACKETS,
    IPV6_PACKETS,
    FamilyPackets,
    Outcome,
    RoundMatcher,
    TargetLedger,
    format_mac,
)
from pingu.domain.commands import StartProbe
from pingu.domain.model import Family, RoundResult, TargetResult
from pingu.domain.verdict import Outlook, Tally, round_outlook, target_outlook

log = logging.getLogger(__name__)

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # asm-generic value
SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
IFF_UP = 0x1
IFF_RUNNING = 0x40  # operationally up: carrier present
ARP_ATTEMPTS = 3
RECEIVE_SIZE = 2048
DRAIN_LIMIT = 256  # packets handled per wake-up, so that a flood cannot starve the loop
SETTLE_SLACK_S = 1.0  # beyond the last echo's timeout: a bound that should never be hit
IF_INET6 = "/proc/thread-self/net/if_inet6"  # this thread's namespace, not the process's
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
PACKETS = {Family.IPV4: IPV4_PACKETS, Family.IPV6: IPV6_PACKETS}

_TIMESPEC = struct.Struct("@ll")  # the native struct timespec of SO_TIMESTAMPNS
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_IFREQ = struct.Struct("16s24x")


class UplinkUnusable(Exception):
    """The round cannot be sent at all; the message is the reason."""


@dataclass
class RoundDiagnostics:
    """What the last round on an uplink saw besides the answers it counted."""

    ident: int
    gateway_mac: str | None
    ignored: int = 0  # passed the kernel filter but answered no echo of the round
    duplicates: int = 0
    late: int = 0


@dataclass(frozen=True)
class _Link:
    name: str
    source: str
    packets: FamilyPackets


class PacketProber:
    """The production prober (the name the wiring and issue #4 use). It builds packets by
    hand rather than with scapy; see :mod:`pingu.adapters.icmp_packets` for why."""

    def __init__(self) -> None:
        self._gateway_macs: dict[tuple[int, str], bytes] = {}
        self.last_round: dict[str, RoundDiagnostics] = {}

    async def run_round(self, probe: StartProbe) -> RoundResult:
        try:
            link = _usable_link(probe)
            gateway_mac = None if probe.point_to_point else await self._gateway_mac(probe, link)
            round_ = _Round(probe, link, gateway_mac)
        except UplinkUnusable as reason:
            self.last_round.pop(probe.uplink, None)
            log.debug("%s: round not sent: %s", probe.uplink, reason)
            return _failed(probe, str(reason))
        try:
            result = await round_.run()
        finally:
            round_.close()
        diagnostics = round_.diagnostics()
        self.last_round[probe.uplink] = diagnostics
        answers = round_.matcher.counts
        if gateway_mac is not None and not answers[Outcome.MATCHED] + answers[Outcome.LATE]:
            # Perhaps the gateway was replaced (same address, new MAC): ask again next time.
            self._gateway_macs.pop(_gateway_key(probe), None)
        if log.isEnabledFor(logging.DEBUG):
            round_.log_echoes()
            log.debug("%s: round %s: %s", probe.uplink, diagnostics, result)
        return result

    def close(self) -> None:
        """Forget the resolved gateways (rounds keep no socket open between them)."""
        self._gateway_macs.clear()

    async def _gateway_mac(self, probe: StartProbe, link: _Link) -> bytes:
        assert probe.gateway is not None  # _usable_link checked it
        key = _gateway_key(probe)
        mac = self._gateway_macs.get(key)
        if mac is None:
            mac = await resolve_gateway(
                link.name, link.source, probe.gateway, probe.timeout_ms, link.packets
            )
            self._gateway_macs[key] = mac
            log.debug("%s: gateway %s is at %s", probe.uplink, probe.gateway, format_mac(mac))
        return mac


def _gateway_key(probe: StartProbe) -> tuple[int, str]:
    """Where a gateway's MAC is cached: its interface and its address (as an address, so
    that ``FE80::1`` and ``fe80::1`` are one)."""
    gateway = probe.gateway or ""
    with contextlib.suppress(ValueError):
        gateway = str(ipaddress.ip_address(gateway))
    return probe.ifindex, gateway


# --------------------------------------------------------------------- one round


@dataclass
class _TargetRun:
    ledger: TargetLedger
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    final: TargetResult | None = None  # frozen once its verdict (or the round's) is certain
    outlook: Outlook = Outlook.OPEN  # its own, when it was frozen

    def result(self) -> TargetResult:
        """The target's echoes now: those still in flight are abandoned, never lost."""
        ledger = self.ledger
        return TargetResult(
            target=ledger.target,
            sent=len(ledger.sent),
            received=ledger.received,
            delays_ms=ledger.ordered_delays(),
            error=self.error,
            abandoned=ledger.in_flight,
        )


class _Round:
    """The sockets, timers and tallies of one round on one uplink."""

    def __init__(self, probe: StartProbe, link: _Link, gateway_mac: bytes | None) -> None:
        self.probe = probe
        self.link = link
        self.gateway_mac = gateway_mac
        packets = link.packets
        self.destination = (link.name, packets.ethertype, 0, 0, gateway_mac or b"")
        ident = secrets.randbits(16)
        self.matcher = RoundMatcher(
            link.source,
            ident,
            secrets.token_bytes(COOKIE_SIZE),
            probe.targets,
            probe.timeout_ms,
            packets=packets,
        )
        self.runs = {t: _TargetRun(ledger) for t, ledger in self.matcher.ledgers.items()}
        self.ip_id = secrets.randbits(16)
        self.timers: list[asyncio.TimerHandle] = []
        self.early = False
        self.loop = asyncio.get_running_loop()
        self.sock = open_packet_socket(
            link.name,
            probe.ifindex,
            packets.ethertype,
            packets.echo_reply_filter(link.source, ident),
        )
        self.loop.add_reader(self.sock.fileno(), self._drain)

    async def run(self) -> RoundResult:
        async with asyncio.TaskGroup() as group:
            for target, run in self.runs.items():
                group.create_task(self._probe_target(run), name=f"echo {target}")
        targets = tuple(run.final or run.result() for run in self.runs.values())
        return RoundResult(targets, early=self.early)

    def close(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.loop.remove_reader(self.sock.fileno())
        close_off_loop(self.sock)

    def log_echoes(self) -> None:
        """One debug line per echo (`pingu run -v`): its reply time, or why it counts as lost."""
        name, gateway = self.probe.uplink, self.probe.gateway or "peer"
        for target, run in self.runs.items():
            ledger = run.ledger
            for seq in sorted(ledger.sent):
                if seq in ledger.delays_ms:
                    outcome = f"reply in {ledger.delays_ms[seq]:.2f} ms"
                elif seq in ledger.expired:
                    outcome = f"lost (no reply within {self.probe.timeout_ms} ms)"
                else:
                    outcome = "not waited for (round decided early)"
                log.debug("%s: echo %d to %s via %s: %s", name, seq, target, gateway, outcome)

    def diagnostics(self) -> RoundDiagnostics:
        counts = self.matcher.counts
        return RoundDiagnostics(
            ident=self.matcher.ident,
            gateway_mac=format_mac(self.gateway_mac) if self.gateway_mac else None,
            ignored=counts[Outcome.IGNORED],
            duplicates=counts[Outcome.DUPLICATE],
            late=counts[Outcome.LATE],
        )

    async def _probe_target(self, run: _TargetRun) -> None:
        probe = self.probe
        start = self.loop.time()
        for seq in range(probe.count):
            if not await self._pause(run, start + seq * probe.interval_ms / 1000):
                break
            if not self._send(run, seq):
                self._decide()
                break
        last_deadline = self.loop.time() + probe.timeout_ms / 1000 + SETTLE_SLACK_S
        await self._pause(run, last_deadline, until_settled=True)
        final = run.final
        if final is not None and (final.sent < probe.count or final.abandoned):
            self.early = True

    def _outlook(self, run: _TargetRun) -> Outlook:
        ledger, probe = run.ledger, self.probe
        unsent = 0 if run.error is not None else probe.count - len(ledger.sent)  # no more sends
        tally = Tally(
            received=ledger.received,
            lost=ledger.lost,
            remaining=unsent + ledger.in_flight,
            delay_sum_ms=sum(ledger.delays_ms.values()),
        )
        return target_outlook(tally, probe.max_lost, probe.max_delay_ms, probe.timeout_ms)

    def _decide(self) -> None:
        """Freeze every target whose verdict is certain now, or all of them once the round's
        is: from then on nothing is sent to it, and nothing it gets back counts. Called on
        every echo answered, lost or failed to send."""
        probe, live = self.probe, [r for r in self.runs.values() if r.final is None]
        if not live:
            return
        for run in live:
            run.outlook = self._outlook(run)
        if not probe.decide_early:
            decided = [r for r in live if r.ledger.lost > probe.max_lost]
        else:
            decided = [r for r in live if r.outlook is not Outlook.OPEN]
            outlooks = [r.outlook for r in self.runs.values()]
            if round_outlook(outlooks, probe.min_hosts_up) is not Outlook.OPEN:
                decided = live
        for run in decided:
            run.final = run.result()
        if decided:
            for run in self.runs.values():
                run.changed.set()

    async def _pause(self, run: _TargetRun, until: float, *, until_settled: bool = False) -> bool:
        """Wait until ``until`` (or, ``until_settled``, until no echo is in flight);
        False as soon as the target need not go on (its verdict, or the round's, is certain)."""
        while run.final is None:
            remaining = until - self.loop.time()
            if remaining <= 0 or (until_settled and not run.ledger.in_flight):
                return True
            run.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.changed.wait(), remaining)
        return False

    def _send(self, run: _TargetRun, seq: int) -> bool:
        target = run.ledger.target
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        packet = self.matcher.request(target, seq, ip_id=self.ip_id)
        real_ns, mono_ns = time.time_ns(), time.monotonic_ns()
        try:
            self.sock.sendto(packet, self.destination)
        except OSError as error:
            run.error = f"send to {target} on {self.link.name}: {error.strerror or error}"
            return False
        self.matcher.sent(target, seq, real_ns, mono_ns)
        timer = self.loop.call_later(self.probe.timeout_ms / 1000, self._expire, run, seq)
        self.timers.append(timer)
        return True

    def _expire(self, run: _TargetRun, seq: int) -> None:
        # A reply may be queued with a timestamp inside the timeout, not yet read because
        # the loop was busy: read it before calling the echo lost.
        self._drain()
        if run.ledger.expire(seq):
            run.changed.set()
            self._decide()

    def _drain(self) -> None:
        for _ in range(DRAIN_LIMIT):
            try:
                data, ancillary, _flags, _address = self.sock.recvmsg(RECEIVE_SIZE, _ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. ENETDOWN, reported once when the link drops
                log.debug("%s: receive: %s", self.link.name, error)
                continue
            outcome = self.matcher.receive(data, kernel_time_ns(ancillary), time.monotonic_ns())
            if outcome is Outcome.MATCHED:
                self._decide()


def kernel_time_ns(ancillary: Sequence[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS receive timestamp among a message's control data, if any."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def _failed(probe: StartProbe, reason: str) -> RoundResult:
    targets = tuple(TargetResult(t, 0, 0, error=reason) for t in probe.targets)
    return RoundResult(targets, error=reason)


# --------------------------------------------------------------------- the uplink


def _usable_link(probe: StartProbe) -> _Link:
    """The uplink's name and source address, or why no echo can leave through it."""
    packets = PACKETS[probe.family]
    try:
        name = socket.if_indextoname(probe.ifindex)
    except OSError:
        raise UplinkUnusable(f"{probe.uplink}: no interface #{probe.ifindex}") from None
    flags = interface_flags(name)
    if not flags & IFF_UP:
        raise UplinkUnusable(f"{name} is administratively down")
    if not flags & IFF_RUNNING:
        raise UplinkUnusable(f"carrier down on {name}")
    if probe.family is Family.IPV6:
        source = _ipv6_source(name, probe.source)
    else:
        source = probe.source or interface_ipv4(name)
    if source is None:
        raise UplinkUnusable(f"no {packets.name} address on {name}")
    if not probe.point_to_point and probe.gateway is None:
        raise UplinkUnusable(f"no gateway on {name}")
    _check_family(probe, packets)
    return _Link(name, source, packets)


def _check_family(probe: StartProbe, packets: FamilyPackets) -> None:
    """Every address of the round is of its family (or no packet could be written)."""
    gateway = () if probe.point_to_point or probe.gateway is None else (probe.gateway,)
    for address in (*probe.targets, *gateway):
        try:
            socket.inet_pton(packets.address_family, address)
        except (OSError, ValueError):
            raise UplinkUnusable(f"{address} is not an {packets.name} address") from None


def _ipv6_source(name: str, source: str | None) -> str | None:
    """``source``, if interface ``name`` holds it and may send from it (None: no source)."""
    if source is None:
        return None
    try:
        address = ipaddress.IPv6Address(source)
    except ValueError:
        raise UplinkUnusable(f"{source} is not an IPv6 address") from None
    flags = interface_ipv6(name).get(address)
    if flags is None:
        raise UplinkUnusable(f"{address} is not an address of {name}")
    if flags & IFA_F_DADFAILED:
        raise UplinkUnusable(f"{address} on {name} failed duplicate address detection")
    if flags & IFA_F_TENTATIVE:
        raise UplinkUnusable(f"{address} on {name} is tentative (duplicate address detection)")
    return str(address)


def _interface_ioctl(name: str, request: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        answer: bytes = fcntl.ioctl(sock.fileno(), request, _IFREQ.pack(name.encode()))
        return answer


def interface_flags(name: str) -> int:
    """The interface's IFF_* flags (the low 16 bits ``SIOCGIFFLAGS`` reports)."""
    try:
        answer = _interface_ioctl(name, SIOCGIFFLAGS)
    except OSError as error:
        raise UplinkUnusable(f"{name}: {error.strerror or error}") from None
    flags: int = struct.unpack_from("H", answer, 16)[0]
    return flags


def interface_ipv4(name: str) -> str | None:
    """The interface's primary IPv4 address, or None if it has none."""
    try:
        answer = _interface_ioctl(name, SIOCGIFADDR)
    except OSError as error:
        if error.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
            return None
        raise UplinkUnusable(f"{name}: {error.strerror or error}") from None
    return socket.inet_ntoa(answer[20:24])  # ifr_addr: family, port, then the address


def interface_ipv6(name: str, table_path: str = IF_INET6) -> dict[ipaddress.IPv6Address, int]:
    """The IPv6 addresses of interface ``name`` and their IFA_F_* flags, in the network
    namespace of the calling thread (none if that namespace has no IPv6)."""
    try:
        with open(table_path) as table:
            lines = table.read().splitlines()
    except FileNotFoundError:
        return {}
    # Each line: address (32 hex digits), ifindex, prefix length, scope, flags, name.
    addresses = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == name:
            addresses[ipaddress.IPv6Address(bytes.fromhex(fields[0]))] = int(fields[4], 16)
    return addresses


def close_off_loop(sock: socket.socket) -> None:
    """Close a packet socket on a worker thread: the kernel waits for an RCU grace period
    when a bound packet socket is released (8 to 16 ms measured here), which must not stall
    the event loop once per round. Outside a running loop it is closed at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        sock.close()
        return
    loop.run_in_executor(None, sock.close)


def open_packet_socket(
    name: str, ifindex: int, protocol: int, program: Sequence[Insn], *, timestamps: bool = True
) -> socket.socket:
    """A non-blocking AF_PACKET SOCK_DGRAM socket on interface ``name`` for ``protocol``,
    its filter attached before it is bound, so that no unfiltered packet is ever queued."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)  # protocol 0: deaf
    except OSError as error:
        raise UplinkUnusable(f"packet socket on {name}: {error}") from None
    try:
        attach_filter(sock, program)
        if timestamps:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        sock.bind((name, protocol))
        bound_to = socket.if_nametoindex(name)
    except OSError as error:
        sock.close()
        raise UplinkUnusable(f"packet socket on {name}: {error}") from None
    if bound_to != ifindex:  # the name now belongs to a re-created interface
        sock.close()
        raise UplinkUnusable(f"{name} is no longer interface #{ifindex}")
    return sock


async def resolve_gateway(
    name: str,
    source: str,
    gateway: str,
    timeout_ms: float,
    packets: FamilyPackets = IPV4_PACKETS,
) -> bytes:
    """The MAC address of ``gateway`` on Ethernet-like interface ``name``, asked from
    ``source`` with ``ARP_ATTEMPTS`` questions (ARP requests, or neighbour solicitations
    for IPv6), each waited for ``timeout_ms``."""
    ifindex = socket.if_nametoindex(name)
    protocol, how = packets.neighbour_ethertype, packets.resolution
    program = packets.neighbour_filter(gateway)
    wanted = ipaddress.ip_address(gateway)
    sock = open_packet_socket(name, ifindex, protocol, program, timestamps=False)
    try:
        _name, _protocol, _kind, link_type, own_mac = sock.getsockname()
        if link_type != ARPHRD_ETHER:
            raise UplinkUnusable(
                f"{name} has no Ethernet link layer (type {link_type}): is it point-to-point?"
            )
        question, to_mac = packets.neighbour_request(own_mac, source, gateway)
        loop = asyncio.get_running_loop()
        for _attempt in range(ARP_ATTEMPTS):
            try:
                sock.sendto(question, (name, protocol, 0, 0, to_mac))
            except OSError as error:
                raise UplinkUnusable(f"{how} on {name}: {error.strerror or error}") from None
            deadline = loop.time() + timeout_ms / 1000
            while (remaining := deadline - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, RECEIVE_SIZE), remaining)
                except TimeoutError:
                    break
                answer = packets.neighbour_answer(data)
                if answer is not None and ipaddress.ip_address(answer[0]) == wanted:
                    return answer[1]
    finally:
        close_off_loop(sock)
    raise UplinkUnusable(f"{how}: no answer from {gateway} on {name}")
