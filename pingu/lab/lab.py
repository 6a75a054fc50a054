"""The simulated network: namespaces for the daemon, one ISP per uplink and the internet,
built on enter and always torn down on exit. Every lab carries IPv4 and IPv6 side by side
(a test of one family need not know of the other).

Topology (uplink i = 1, 2, ... in the order given; ``UPLINK`` its name, e.g. ``wan1``)::

    daemon ns                  ISP i ns                          internet ns
    UPLINK ------------------- cust                              lo: the targets
      ethernet: a veth pair;   transit ------------------------- isp<i>
      p2p: two tun devices
      joined by a relay

Addressing plan (what other lab modules, such as DHCP/RA servers, may rely on):

=====================  ===============================  ==================================
where                  IPv4                             IPv6
=====================  ===============================  ==================================
daemon's UPLINK        100.64.i.2/24                    2001:db8:i::2/64 (i in hex, as
                       (p2p: 100.64.i.2 peer .1)        every IPv6 group: uplink 10 is
                                                        2001:db8:a::/64); p2p:
                                                        2001:db8:i::2 peer 2001:db8:i::1;
                                                        plus the kernel's own link-local
ISP's ``cust``         100.64.i.1/24 (the gateway)      2001:db8:i::1/64 and fe80::1/64,
                       (p2p: 100.64.i.1 peer .2)        its only link-local: the gateway
                                                        (p2p: 2001:db8:i::1 peer ::2, and
                                                        fe80::1/64)
ISP's ``transit``      198.51.100.(4i+1)/30             2001:db8:f00i::1/64 (f000 + i:
                                                        f001 .. f03e)
internet's ``isp<i>``  198.51.100.(4i+2)/30             2001:db8:f00i::2/64
internet's lo          the IPv4 targets, /32            the IPv6 targets, /128
                       (default 203.0.113.10)           (default 2001:db8:ffff::10, ::11)
=====================  ===============================  ==================================

Routes: each ISP forwards both families (``ip_forward``, ``conf.all.forwarding``), its
default routes via the internet's end of the transfer link; the internet routes
100.64.i.0/24 and 2001:db8:i::/64 back via the ISP's. The daemon namespace starts with no
default route of either family: a simulated client puts them in (:meth:`Lab.dhcp_add`,
:meth:`Lab.ra_add`), or a real one does.

IPv6 details: every address the lab adds skips duplicate address detection (``nodad``),
except the daemon's own on an ethernet ``Uplink(..., dad=True)``, which goes through it
(tentative a second or two after each creation, and again after :meth:`Lab.redo_dad`).
The ISP and internet namespaces do no DAD at all (``accept_dad`` 0); the daemon's keeps
the kernel's defaults (DAD on its own link-locals, ``accept_ra`` 1: it takes whatever
router advertisement a real RA daemon sends). The ISP's ``cust`` generates no link-local
of its own (``addr_gen_mode`` 1), so that fe80::1 is the source of whatever it says on
the link (neighbour advertisements, router advertisements); it keeps its global address
when it goes down (``keep_addr_on_down``), and the lab puts its link-locals back when it
comes up, so that a carrier cut does not renumber it.

The internet namespace ignores echoes in its kernel; a responder process answers them
instead, so that tests can impose loss and delay per target.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pingu.lab import _process
from pingu.lab.errors import LabError
from pingu.lab.ping import PingResult
from pingu.lab.responder import ResponderControl

log = logging.getLogger(__name__)

UplinkKind = Literal["ethernet", "p2p"]
ISP_DOWNLINK = "cust"  # the ISP's end of an uplink, in the ISP namespace
ISP_UPLINK = "transit"  # the ISP's end of its link to the internet ("up" is an ip keyword)
MAX_UPLINKS = 62  # 198.51.100.0/24 holds 62 transfer /30s from .4 on
CARRIER_TIMEOUT = 5.0
HELPER_START_TIMEOUT = 10.0
TARGET_NETS = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("192.0.2.0/24"))
TARGET_NETS6 = (ipaddress.ip_network("2001:db8::/32"),)
DEFAULT_TARGETS4 = ("203.0.113.10",)
DEFAULT_TARGETS6 = ("2001:db8:ffff::10", "2001:db8:ffff::11")
ISP_LINK_LOCAL = "fe80::1"  # the ISP's only link-local on every uplink: the IPv6 gateway
RA_LIFETIME = 1800  # s: radvd's default router lifetime (3 x MaxRtrAdvInterval)
RTPROT_RA = 9
_LINK_LOCAL = ipaddress.IPv6Network("fe80::/64")
# No duplicate address detection on the ISPs' and the internet's links: their link-locals
# are usable at once, so the first packet across waits for no tentative address (a
# neighbour solicitation needs a source). The daemon's namespace keeps the kernel's way.
NO_DAD = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
IPVersion = Literal[4, 6]
_UPLINK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_registry = _process.Registry()


def prefixes_used() -> tuple[str, ...]:
    """The name prefix of every lab built in this process (for leak checks)."""
    return tuple(_registry.prefixes)


@dataclass(frozen=True)
class Uplink:
    """An uplink of the daemon's host: a name and how it is wired. ``dad``: the daemon's
    global IPv6 address goes through duplicate address detection (tentative for a second
    or two after the uplink is created) instead of being usable at once; ethernet only, as
    the kernel does no DAD on a point-to-point (NOARP) link."""

    name: str
    kind: UplinkKind = "ethernet"
    dad: bool = False


@dataclass(frozen=True)
class Nexthop:
    """One path of a multipath route."""

    gateway: str | None
    oif: str | None
    weight: int = 1
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """A route of the daemon namespace, as the kernel reports it (either family)."""

    dst: str  # network address, "0.0.0.0" or "::" for a default route
    dst_len: int
    gateway: str | None  # None on a multipath route: see nexthops
    oif: str | None  # interface name
    metric: int
    proto: int
    scope: int
    table: int
    type: int = 1  # RTN_UNICAST
    flags: tuple[str, ...] = ()
    prefsrc: str | None = None
    metrics: tuple[tuple[str, int], ...] = ()  # route metrics: ("advmss", 1360), ("mtu", 1400)
    family: IPVersion = 4
    expires: int | None = None  # seconds left (an RA's route), None: never
    pref: str | None = None  # IPv6 router preference: "low", "medium", "high"
    nexthops: tuple[Nexthop, ...] = ()  # the paths of a multipath route

    @property
    def is_default(self) -> bool:
        return self.dst_len == 0


@dataclass(frozen=True)
class ReceivedEcho:
    """An echo request that reached a target, as the responder logged it."""

    time: float  # the responder's time.monotonic(), the same clock as ours
    src: str
    dst: str
    ident: int
    seq: int
    answered: bool  # False: dropped by the loss pattern


@dataclass
class _Lease:
    gateway: str | None
    metric: int
    proto: str
    options: str = ""  # more `ip route` words: "mtu 1400 src 100.64.1.2", "onlink"
    expires: int | None = None  # an RA's router lifetime


@dataclass
class _UplinkState:
    spec: Uplink
    index: int
    isp_ns: str
    present: bool = False
    relay: subprocess.Popen[bytes] | None = None
    lease: _Lease | None = None
    ra: _Lease | None = None
    isp_gateways: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def local(self) -> str:
        return f"100.64.{self.index}.2"

    @property
    def gateway(self) -> str:
        return f"100.64.{self.index}.1"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"100.64.{self.index}.0/24")

    @property
    def isp_transfer(self) -> str:
        return f"198.51.100.{4 * self.index + 1}"

    @property
    def internet_transfer(self) -> str:
        return f"198.51.100.{4 * self.index + 2}"

    # IPv6: the third group is the index (in hex, as IPv6 is written): 2001:db8:a::/64
    # beside 100.64.10.0/24.

    @property
    def subnet6(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(f"2001:db8:{self.index:x}::/64")

    @property
    def local6(self) -> str:
        return str(self.subnet6.network_address + 2)

    @property
    def gateway6_global(self) -> str:
        return str(self.subnet6.network_address + 1)

    @property
    def transfer6(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(f"2001:db8:{0xF000 + self.index:x}::/64")

    @property
    def isp_transfer6(self) -> str:
        return str(self.transfer6.network_address + 1)

    @property
    def internet_transfer6(self) -> str:
        return str(self.transfer6.network_address + 2)


class Lab:
    """``with Lab(uplinks=["wan1", Uplink("ppp0", "p2p")]) as lab:`` builds the network;
    leaving the block (normally, by an exception or Ctrl-C) removes every namespace the
    lab made and stops its processes. Use it from the main thread: helper processes are
    tied to the thread that started them.

    ``targets`` may mix both families (documentation addresses only). A family none of
    them belongs to gets its default targets, so that every lab has both: ``targets`` is
    the IPv4 ones (as before IPv6 came), ``targets6`` the IPv6 ones."""

    def __init__(
        self,
        uplinks: Sequence[str | Uplink],
        targets: Sequence[str] = DEFAULT_TARGETS4,
        *,
        prefix: str | None = None,
    ) -> None:
        self.prefix = prefix or f"pgl-{secrets.token_hex(3)}"
        specs = [u if isinstance(u, Uplink) else Uplink(u) for u in uplinks]
        _check_uplinks(specs)
        given = [_check_target(t) for t in targets]
        if not given or len(set(given)) != len(given):
            raise ValueError(f"targets must be distinct, and at least one: {targets!r}")
        self.targets: tuple[str, ...] = tuple(t for t in given if ":" not in t) or DEFAULT_TARGETS4
        self.targets6: tuple[str, ...] = tuple(t for t in given if ":" in t) or DEFAULT_TARGETS6
        self.daemon_ns = f"{self.prefix}-daemon"
        self.internet_ns = f"{self.prefix}-inet"
        self._uplinks = {
            spec.name: _UplinkState(spec, i, f"{self.prefix}-isp-{spec.name}")
            for i, spec in enumerate(specs, start=1)
        }
        own_links = [net for state in self._uplinks.values() for net in _lab_nets6(state)]
        inside = [t for t in self.targets6 if any(ipaddress.ip_address(t) in n for n in own_links)]
        if inside:
            raise ValueError(f"targets {inside} are on the lab's own links")
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._workdir: str | None = None
        self._responder: ResponderControl | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Lab:
        _registry.add(id(self), self.prefix, self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except LabError:
            if exc_type is None:
                raise
            log.exception("lab %s: teardown failed while handling %s", self.prefix, exc_type)

    def close(self) -> None:
        """Stop every process and delete every namespace this lab made (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with _process.SignalsDeferred():
            problems = self._teardown()
            _registry.remove(id(self))
        if problems:
            raise LabError(f"lab {self.prefix}: teardown incomplete: " + "; ".join(problems))

    def _teardown(self) -> list[str]:
        problems: list[str] = []
        self._responder = None
        _process.stop_processes(self._processes[::-1])
        for ns in reversed(self._namespaces):
            # Whatever else runs in our namespace (a daemon's children, say) would keep it
            # alive, unlisted, after `ip netns del`.
            pids = _process.run(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    continue
            with _process.netns_lock():
                done = _process.run(["ip", "netns", "del", ns], check=False)
            if done.returncode != 0 and os.path.exists(f"/run/netns/{ns}"):
                problems.append(f"ip netns del {ns}: {done.stderr.strip()}")
        self._namespaces.clear()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        return problems

    def _build(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        self._add_namespace(self.daemon_ns)
        self._add_namespace(self.internet_ns)
        self._sysctl(
            self.internet_ns,
            "net.ipv4.icmp_echo_ignore_all=1",
            "net.ipv6.icmp.echo_ignore_all=1",
            *NO_DAD,
        )
        for target in self.targets:
            self._ip(self.internet_ns, f"addr add {target}/32 dev lo")
        for target in self.targets6:
            self._ip(self.internet_ns, f"addr add {target}/128 dev lo nodad")
        for state in self._uplinks.values():
            self._build_isp(state)
            self._create_access_link(state)
        self._start_responder()

    def _add_namespace(self, ns: str) -> None:
        with _process.netns_lock():
            _process.run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        self._ip(ns, "link set lo up")
        # Probes leave through one uplink while the main table may point at another:
        # strict reverse-path filtering would drop their replies.
        self._sysctl(ns, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")

    def _build_isp(self, state: _UplinkState) -> None:
        isp, inet, peer = state.isp_ns, self.internet_ns, f"isp{state.index}"
        self._add_namespace(isp)
        self._sysctl(
            isp,
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            # A carrier cut (cust set down) must not take the ISP's addresses with it.
            "net.ipv6.conf.all.keep_addr_on_down=1",
            *NO_DAD,
        )
        self._ip(isp, f"link add {ISP_UPLINK} type veth peer name {peer} netns {inet}")
        self._ip(isp, f"addr add {state.isp_transfer}/30 dev {ISP_UPLINK}")
        self._ip(isp, f"addr add {state.isp_transfer6}/64 dev {ISP_UPLINK} nodad")
        self._ip(isp, f"link set {ISP_UPLINK} up")
        self._ip(inet, f"addr add {state.internet_transfer}/30 dev {peer}")
        self._ip(inet, f"addr add {state.internet_transfer6}/64 dev {peer} nodad")
        self._ip(inet, f"link set {peer} up")
        self._ip(isp, "route add " + _upstream_route(state, 4))
        self._ip(isp, "-6 route add " + _upstream_route(state, 6))
        self._ip(inet, f"route add {state.subnet} via {state.isp_transfer} dev {peer}")
        self._ip(inet, f"-6 route add {state.subnet6} via {state.isp_transfer6} dev {peer}")

    def _create_access_link(self, state: _UplinkState) -> None:
        name, isp, daemon = state.name, state.isp_ns, self.daemon_ns
        local_dad = "" if state.spec.dad else " nodad"
        if state.spec.kind == "ethernet":
            self._ip(daemon, f"link add {name} type veth peer name {ISP_DOWNLINK} netns {isp}")
            self._ip(daemon, f"addr add {state.local}/24 dev {name}")
            self._ip(isp, f"addr add {state.gateway}/24 dev {ISP_DOWNLINK}")
            local6, isp6 = f"{state.local6}/64", f"{state.gateway6_global}/64"
        else:
            # Persistent tun devices: they exist (carrier down) until the relay attaches.
            self._ip(daemon, f"tuntap add dev {name} mode tun")
            self._ip(isp, f"tuntap add dev {ISP_DOWNLINK} mode tun")
            self._ip(daemon, f"addr add {state.local} peer {state.gateway} dev {name}")
            self._ip(isp, f"addr add {state.gateway} peer {state.local} dev {ISP_DOWNLINK}")
            local6 = f"{state.local6} peer {state.gateway6_global}"
            isp6 = f"{state.gateway6_global} peer {state.local6}"
        # fe80::1 is to be the ISP's only link-local: no address of its own making.
        self._sysctl(isp, f"net.ipv6.conf.{ISP_DOWNLINK}.addr_gen_mode=1")
        state.isp_gateways = {state.gateway, state.gateway6_global, ISP_LINK_LOCAL}
        state.present = True
        self._ip(isp, f"link set {ISP_DOWNLINK} up")
        self._ip(daemon, f"link set {name} up")
        # IPv6 addresses once the links are up: a peer address added to a tun that is
        # still down loses its peer route when the tun comes up.
        self._ip(isp, f"addr add {isp6} dev {ISP_DOWNLINK} nodad")
        self._ip(isp, f"addr add {ISP_LINK_LOCAL}/64 dev {ISP_DOWNLINK} nodad")
        self._ip(daemon, f"addr add {local6} dev {name}{local_dad}")
        if state.spec.kind == "p2p":
            sides = ["--a", f"{daemon}:{name}", "--b", f"{isp}:{ISP_DOWNLINK}"]
            state.relay = self._spawn("relay", *sides)
        self._wait_carrier(state, True)

    def _start_responder(self) -> None:
        assert self._workdir is not None
        path = os.path.join(self._workdir, "responder.sock")
        targets = [arg for t in self.targets + self.targets6 for arg in ("--target", t)]
        proc = self._spawn("responder", "--netns", self.internet_ns, "--control", path, *targets)
        control = ResponderControl(path)

        def ready() -> bool:
            try:
                control.request("ping")
            except OSError:
                return False
            return True

        self._wait(ready, HELPER_START_TIMEOUT, "the responder's control socket", proc)
        self._responder = control

    # ------------------------------------------------------------------ names and lookups

    @property
    def uplinks(self) -> tuple[str, ...]:
        return tuple(self._uplinks)

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace this lab made and has not removed yet."""
        return tuple(self._namespaces)

    def process_ids(self) -> tuple[int, ...]:
        """The pids of the processes the lab started (relays, responder, popen_in_daemon)."""
        return tuple(p.pid for p in self._processes)

    def isp_ns(self, uplink: str) -> str:
        """The namespace of the ISP behind ``uplink``."""
        return self._state(uplink).isp_ns

    def local_address(self, uplink: str) -> str:
        """The daemon's address on ``uplink``."""
        return self._state(uplink).local

    def gateway(self, uplink: str) -> str:
        """The ISP's own address on ``uplink`` (the default lease's gateway, the p2p peer)."""
        return self._state(uplink).gateway

    def local_address6(self, uplink: str) -> str:
        """The daemon's global IPv6 address on ``uplink`` (2001:db8:i::2)."""
        return self._state(uplink).local6

    def gateway6(self, uplink: str) -> str:
        """The ISP's link-local address on ``uplink``, fe80::1: the IPv6 gateway, as a
        router advertisement gives it (the default of :meth:`ra_add` on ethernet)."""
        self._state(uplink)
        return ISP_LINK_LOCAL

    def gateway6_global(self, uplink: str) -> str:
        """The ISP's global IPv6 address on ``uplink`` (2001:db8:i::1; the p2p peer)."""
        return self._state(uplink).gateway6_global

    def address6_flags(self, uplink: str) -> frozenset[str] | None:
        """The flags of the daemon's global IPv6 address on ``uplink`` as ``ip`` names
        them ("tentative", "dadfailed", "deprecated", "nodad", ...); None when it has none."""
        state = self._state(uplink)
        text = self._ip(self.daemon_ns, f"-j -6 addr show dev {state.name} scope global")
        for link in json.loads(text or "[]"):
            for info in link.get("addr_info", ()):
                if info.get("local") == state.local6:
                    return frozenset(k for k, v in info.items() if v is True)
        return None

    def ifindex(self, uplink: str) -> int:
        """The current ifindex of ``uplink`` in the daemon namespace."""
        return int(self._link(uplink)["ifindex"])

    def carrier(self, uplink: str) -> bool:
        """Whether ``uplink`` has carrier in the daemon namespace."""
        return "LOWER_UP" in self._link(uplink).get("flags", [])

    def routes(self, table: int = 254, family: IPVersion = 4) -> list[Route]:
        """The routes of ``table`` in the daemon namespace, of one family (IPv4 unless told)."""
        family = _family(family)
        text = self._ip(self.daemon_ns, f"-d -j -N -{family} route show table {int(table)}")
        return [_parse_route(entry, table, family) for entry in json.loads(text or "[]")]

    def default_routes(self, table: int = 254, family: IPVersion = 4) -> list[Route]:
        """The default routes of ``table`` in the daemon namespace (IPv4 unless told)."""
        return [r for r in self.routes(table, family) if r.is_default]

    # ------------------------------------------------------------------ running things

    def run(
        self, ns: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in a namespace of this lab: its full name, or "daemon",
        "internet", "isp:UPLINK"."""
        argv = ["ip", "netns", "exec", self._resolve_ns(ns), *argv]
        return _process.run(argv, check=check, timeout=timeout, env=_process.helper_env())

    def popen_in_daemon(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in the daemon namespace (``subprocess.Popen`` keywords pass
        through); if it still runs at teardown, it is stopped."""
        env = {**_process.helper_env(), **kwargs.pop("env", {})}
        proc = subprocess.Popen(["ip", "netns", "exec", self.daemon_ns, *argv], env=env, **kwargs)
        self._processes.append(proc)
        return proc

    def ping(
        self,
        uplink: str | None,
        target: str | None = None,
        *,
        count: int = 1,
        interval: float = 0.1,
        timeout: float = 1.0,
    ) -> PingResult:
        """Echo ``target`` (default: the first IPv4 one; an IPv6 one is echoed with ICMPv6)
        from the daemon namespace, out of ``uplink`` only when one is given. The kernel
        still needs a route out of it (the DHCP or RA one, say), except for IPv4 on a p2p
        uplink, where it takes any destination as on-link (IPv6 has no such rule)."""
        argv = [sys.executable, "-m", "pingu.lab.ping", "--netns", self.daemon_ns]
        if uplink is not None:
            argv += ["--interface", self._state(uplink).name]
        argv += ["--count", str(count), "--interval", str(interval), "--timeout", str(timeout)]
        argv.append(target or self.targets[0])
        limit = count * interval + timeout + HELPER_START_TIMEOUT
        done = _process.run(argv, timeout=limit, env=_process.helper_env())
        return PingResult.from_json(done.stdout)

    # ------------------------------------------------------------------ simulated DHCP/PPP client

    def dhcp_add(
        self,
        uplink: str,
        gateway: str | None = None,
        *,
        metric: int = 100,
        proto: str = "dhcp",
        options: str = "",
    ) -> None:
        """Install the default route a DHCP (or PPP) client would: ``default via GATEWAY
        dev UPLINK proto PROTO metric METRIC [OPTIONS]``. Without ``gateway``: the ISP's
        address on an ethernet uplink, no gateway at all (``scope link``) on a p2p one.
        ``options`` are more ``ip route`` words (``mtu 1400 src ...``); with ``onlink`` the
        gateway may be outside the uplink's subnet (a cloud VM's layout), the ISP then
        answers on it as a /32."""
        state = self._present(uplink)
        if state.lease is not None:
            raise LabError(f"{uplink} already has a lease; renew or withdraw it")
        if gateway is None and state.spec.kind == "ethernet":
            gateway = state.gateway
        if gateway is not None:
            gateway = self._isp_answers(state, gateway, onlink="onlink" in options.split())
        lease = _Lease(gateway, metric, proto, options)
        self._ip(self.daemon_ns, "route add " + _lease_route(state, lease))
        state.lease = lease

    def dhcp_renew(self, uplink: str, new_gateway: str, *, keep_old_gateway: bool = True) -> None:
        """A renewed lease with another gateway: the ISP answers on ``new_gateway`` too, and
        the default route is swapped (removed, then added, as dhclient does). The old route
        may already be gone (pingu captures it)."""
        state = self._present(uplink)
        old = state.lease
        if old is None:
            raise LabError(f"{uplink} has no lease to renew")
        new = _Lease(self._isp_answers(state, new_gateway), old.metric, old.proto, old.options)
        self._delete_route(_lease_route(state, old))
        self._ip(self.daemon_ns, "route add " + _lease_route(state, new))
        state.lease = new
        if not keep_old_gateway and old.gateway not in (None, new.gateway, state.gateway):
            plen = 24 if state.spec.kind == "ethernet" else 32
            self._ip(state.isp_ns, f"addr del {old.gateway}/{plen} dev {ISP_DOWNLINK}")
            state.isp_gateways.discard(str(old.gateway))

    def dhcp_withdraw(self, uplink: str) -> None:
        """The lease ends: its default route goes (unless pingu captured it already)."""
        state = self._present(uplink)
        if state.lease is None:
            raise LabError(f"{uplink} has no lease to withdraw")
        self._delete_route(_lease_route(state, state.lease))
        state.lease = None

    def ra_add(
        self,
        uplink: str,
        gateway: str | None = None,
        *,
        metric: int = 1024,
        proto: str = "ra",
        expires: int | None = None,
        options: str = "",
    ) -> None:
        """Install the IPv6 default route the kernel installs for a router advertisement:
        ``default via GATEWAY dev UPLINK proto ra metric 1024 expires 1800``. Without
        ``gateway``: the ISP's fe80::1 on an ethernet uplink, no gateway at all on a p2p
        one (pass ``gateway6(uplink)`` for the ``via fe80::1`` a PPP peer's RA gives).
        ``expires``: the router lifetime in seconds (None: 1800; 0: never); ``options``:
        more ``ip route`` words (``pref high``, ``mtu 1400``). The ISP answers on a
        ``gateway`` of its link (fe80::/64 or 2001:db8:i::/64).

        Unlike the kernel's own RA routes (flagged RTF_ADDRCONF, never merged), a route
        added by ``ip`` refuses a second default route of the same metric on another
        uplink (``File exists``): give each uplink its own metric, or run a real RA
        daemon."""
        state = self._present(uplink)
        if state.ra is not None:
            raise LabError(f"{uplink} already has an RA route; withdraw it first")
        if gateway is None and state.spec.kind == "ethernet":
            gateway = ISP_LINK_LOCAL
        if gateway is not None:
            gateway = self._isp_answers6(state, gateway)
        lifetime = RA_LIFETIME if expires is None else int(expires)
        lease = _Lease(gateway, metric, proto, options, expires=lifetime or None)
        self._ip(self.daemon_ns, "-6 route add " + _lease_route(state, lease))
        state.ra = lease

    def ra_withdraw(self, uplink: str) -> None:
        """The router is gone (a zero router lifetime): its IPv6 default route goes
        (unless pingu captured it already, or it expired)."""
        state = self._present(uplink)
        if state.ra is None:
            raise LabError(f"{uplink} has no RA route to withdraw")
        self._delete_route(_lease_route(state, state.ra, deleting=True), family=6)
        state.ra = None

    def redo_dad(self, uplink: str, *, transmits: int = 1) -> None:
        """Renumber the daemon's global IPv6 address on ``uplink`` (2001:db8:i::2) through
        duplicate address detection, whatever the uplink's ``dad``: it is removed and
        added again, tentative from this call on for ``transmits`` neighbour solicitations
        one second apart (the kernel's RetransTimer), then usable. Its prefix route goes
        and comes back with it; other addresses (a client's) stay. On a p2p uplink the
        kernel does no DAD (NOARP links, as PPP): the address is usable at once."""
        state = self._present(uplink)
        if not 1 <= transmits <= 100:
            raise ValueError(f"transmits must be within 1..100, got {transmits}")
        name = state.name
        self._sysctl(self.daemon_ns, f"net.ipv6.conf.{name}.dad_transmits={int(transmits)}")
        if state.spec.kind == "ethernet":
            self._ip(self.daemon_ns, f"-6 addr del {state.local6}/64 dev {name}")
            self._ip(self.daemon_ns, f"addr add {state.local6}/64 dev {name}")
        else:
            self._ip(self.daemon_ns, f"-6 addr del {state.local6}/128 dev {name}")
            peer = f"{state.local6} peer {state.gateway6_global}"
            self._ip(self.daemon_ns, f"addr add {peer} dev {name}")

    def _delete_route(self, spec: str, family: IPVersion = 4) -> None:
        try:
            self._ip(self.daemon_ns, f"-{family} route del " + spec)
        except LabError as exc:
            if "No such process" not in str(exc):
                raise

    def _isp_answers6(self, state: _UplinkState, gateway: str) -> str:
        """Give the ISP the IPv6 address ``gateway`` on the uplink, so that it answers there."""
        try:
            address = ipaddress.IPv6Address(gateway)
        except ValueError:
            raise LabError(f"gateway {gateway!r} is not an IPv6 address") from None
        link_local = _LINK_LOCAL
        if (address not in state.subnet6 and address not in link_local) or str(
            address
        ) == state.local6:
            raise LabError(
                f"gateway {address} of {state.name} must be in {state.subnet6} or fe80::/64"
            )
        if str(address) not in state.isp_gateways:
            plen = 64 if state.spec.kind == "ethernet" or address in link_local else 128
            self._ip(state.isp_ns, f"addr add {address}/{plen} dev {ISP_DOWNLINK} nodad")
            state.isp_gateways.add(str(address))
        return str(address)

    def _isp_answers(self, state: _UplinkState, gateway: str, *, onlink: bool = False) -> str:
        """Give the ISP the address ``gateway`` on the uplink, so that it answers there."""
        try:
            address = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise LabError(f"gateway {gateway!r} is not an IPv4 address") from None
        outside = address not in state.subnet
        if (outside and not onlink) or str(address) == state.local:
            raise LabError(f"gateway {address} of {state.name} must be in {state.subnet}")
        if outside:
            _check_target(str(address))  # a documentation address, as every target
        if str(address) not in state.isp_gateways:
            plen = 24 if state.spec.kind == "ethernet" and not outside else 32
            self._ip(state.isp_ns, f"addr add {address}/{plen} dev {ISP_DOWNLINK}")
            state.isp_gateways.add(str(address))
        return str(address)

    # ------------------------------------------------------------------ impairments

    def carrier_down(self, uplink: str) -> None:
        """The line drops: ``uplink`` loses carrier in the daemon namespace (its admin
        state stays up). Ethernet: the ISP's end goes down; p2p: the relay drops the tun
        carrier and every packet."""
        self._set_carrier(self._present(uplink), False)

    def carrier_up(self, uplink: str) -> None:
        """The line is back: carrier up again on ``uplink``."""
        self._set_carrier(self._present(uplink), True)

    def _set_carrier(self, state: _UplinkState, up: bool) -> None:
        if state.relay is not None:
            state.relay.send_signal(signal.SIGUSR2 if up else signal.SIGUSR1)
        else:
            self._ip(state.isp_ns, f"link set {ISP_DOWNLINK} {'up' if up else 'down'}")
            if up:
                # Link-locals go with a link that goes down, keep_addr_on_down or not.
                for address in sorted(state.isp_gateways):
                    if ipaddress.ip_address(address) in _LINK_LOCAL:
                        self._ip(state.isp_ns, f"addr add {address}/64 dev {ISP_DOWNLINK} nodad")
        self._wait_carrier(state, up)

    def cut_upstream(self, uplink: str, family: IPVersion | None = None) -> None:
        """The ISP loses its way to the internet (a blackhole default route in the ISP
        namespace), for one family (4 or 6) or both (None); the uplink itself stays up."""
        state = self._state(uplink)
        for each in _families(family):
            self._ip(state.isp_ns, f"-{each} route replace blackhole default")

    def restore_upstream(self, uplink: str, family: IPVersion | None = None) -> None:
        """The ISP reaches the internet again, for one family (4 or 6) or both (None)."""
        state = self._state(uplink)
        for each in _families(family):
            self._ip(state.isp_ns, f"-{each} route replace " + _upstream_route(state, each))

    def set_loss(self, target: str | None, share: float) -> None:
        """Drop ``share`` (0..1) of the echoes to ``target`` (None: every target, of both
        families), in the deterministic pattern described in :mod:`pingu.lab.responder`:
        echo n, counted from this call, is dropped iff floor(n*share) > floor((n-1)*share)."""
        self._control().request("set_loss", target=target, share=share)

    def set_delay(self, target: str | None, ms: float) -> None:
        """Answer echoes to ``target`` (None: every target, of both families) ``ms``
        milliseconds late."""
        self._control().request("set_delay", target=target, ms=ms)

    def responder_log(self, *, clear: bool = False) -> list[ReceivedEcho]:
        """Every echo request the targets received (oldest first), answered or dropped."""
        answer = self._control().request("log", clear=clear)
        return [ReceivedEcho(**entry) for entry in answer["echoes"]]

    def delete_uplink(self, uplink: str) -> None:
        """The interface goes away (a modem hangs up), and its routes with it."""
        state = self._present(uplink)
        if state.relay is not None:
            _process.stop_processes([state.relay])
            self._processes.remove(state.relay)
            state.relay = None
        self._ip(self.daemon_ns, f"link del {uplink}")
        if state.spec.kind == "p2p":
            self._ip(state.isp_ns, f"link del {ISP_DOWNLINK}")
        state.present = False
        state.lease = None
        state.ra = None

    def recreate_uplink(self, uplink: str) -> int:
        """A redial: the interface is deleted (if present) and created again with the same
        name and addresses (both families) but a new ifindex, which is returned. There is
        no lease yet: call :meth:`dhcp_add` and :meth:`ra_add` as the clients would."""
        state = self._state(uplink)
        if state.present:
            self.delete_uplink(uplink)
        self._create_access_link(state)
        return self.ifindex(uplink)

    # ------------------------------------------------------------------ plumbing

    def _state(self, uplink: str) -> _UplinkState:
        try:
            return self._uplinks[uplink]
        except KeyError:
            raise LabError(f"no uplink {uplink!r} in this lab ({list(self._uplinks)})") from None

    def _present(self, uplink: str) -> _UplinkState:
        state = self._state(uplink)
        if not state.present:
            raise LabError(f"{uplink} is deleted; recreate_uplink() it first")
        return state

    def _control(self) -> ResponderControl:
        if self._responder is None:
            raise LabError(f"lab {self.prefix} is not running")
        return self._responder

    def _resolve_ns(self, ns: str) -> str:
        if ns == "daemon":
            return self.daemon_ns
        if ns == "internet":
            return self.internet_ns
        if ns.startswith("isp:"):
            return self.isp_ns(ns.removeprefix("isp:"))
        if ns in self._namespaces:
            return ns
        raise LabError(f"{ns!r} is not a namespace of lab {self.prefix}")

    def _link(self, uplink: str) -> dict[str, Any]:
        state = self._state(uplink)
        (link,) = json.loads(self._ip(self.daemon_ns, f"-j link show dev {state.name}"))
        return dict(link)

    def _ip(self, ns: str, command: str) -> str:
        """``ip -n NS COMMAND``; the words of COMMAND are names and addresses we checked."""
        return _process.run(["ip", "-n", ns, *command.split()]).stdout

    def _sysctl(self, ns: str, *settings: str) -> None:
        """Set ``key=value`` ``settings`` in ``ns``, in one run of sysctl."""
        _process.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])

    def _spawn(self, helper: str, *args: str) -> subprocess.Popen[bytes]:
        assert self._workdir is not None
        argv = [sys.executable, "-m", f"pingu.lab.{helper}", *args, "--parent", str(os.getpid())]
        with open(os.path.join(self._workdir, f"{helper}.log"), "ab") as output:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=_process.helper_env(),
            )
        self._processes.append(proc)
        return proc

    def _wait_carrier(self, state: _UplinkState, up: bool) -> None:
        what = f"carrier {'up' if up else 'down'} on {state.name}"
        self._wait(lambda: self.carrier(state.name) == up, CARRIER_TIMEOUT, what, state.relay)

    def _wait(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        helper: subprocess.Popen[bytes] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if helper is not None and helper.poll() is not None:
                raise LabError(
                    f"waiting for {what}: helper exited with {helper.returncode}; "
                    + self._helper_logs()
                )
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)

    def _helper_logs(self) -> str:
        if not self._workdir:
            return ""
        logs = sorted(Path(self._workdir).glob("*.log"))
        return " | ".join(f"{p.name}: {p.read_text(errors='replace')[-2000:]}" for p in logs)


def _lease_route(state: _UplinkState, lease: _Lease, *, deleting: bool = False) -> str:
    """The `ip route` arguments of the default route ``lease`` installs on ``state``
    (``deleting``: only the words that name it, for an IPv6 ``route del``)."""
    via = f"via {lease.gateway} " if lease.gateway else ""
    route = f"default {via}dev {state.name} proto {lease.proto} metric {int(lease.metric)}"
    if deleting:
        return route
    if lease.expires:
        route += f" expires {int(lease.expires)}"
    if lease.options:
        route += " " + lease.options
    if lease.gateway is None:
        return route + " scope link"
    if state.spec.kind == "p2p" and "onlink" not in lease.options.split():
        return route + " onlink"
    return route


def _upstream_route(state: _UplinkState, family: IPVersion) -> str:
    """The `ip route` arguments of the ISP's default route to the internet."""
    via = state.internet_transfer if family == 4 else state.internet_transfer6
    return f"default via {via} dev {ISP_UPLINK}"


def _family(family: int) -> IPVersion:
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, got {family!r}")
    return 4 if family == 4 else 6


def _families(family: int | None) -> tuple[IPVersion, ...]:
    return (4, 6) if family is None else (_family(family),)


def _lab_nets6(state: _UplinkState) -> tuple[ipaddress.IPv6Network, ...]:
    """The IPv6 networks the lab itself uses for ``state``'s uplink."""
    return (state.subnet6, state.transfer6)


def _check_uplinks(specs: Sequence[Uplink]) -> None:
    names = [s.name for s in specs]
    if not 1 <= len(names) <= MAX_UPLINKS:
        raise ValueError(f"a lab needs 1..{MAX_UPLINKS} uplinks, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"uplink names must be distinct: {names}")
    for spec in specs:
        if not _UPLINK_NAME.match(spec.name) or spec.name == "lo":
            raise ValueError(f"not a usable interface name: {spec.name!r}")
        if spec.kind not in ("ethernet", "p2p"):
            raise ValueError(f"uplink {spec.name}: kind must be 'ethernet' or 'p2p'")


def _check_target(text: str) -> str:
    """``text`` as a canonical address, if it is a documentation address of its family."""
    address = ipaddress.ip_address(text)
    nets = TARGET_NETS if address.version == 4 else TARGET_NETS6
    if not any(address in net for net in nets):
        raise ValueError(f"target {text} must be in {' or '.join(map(str, nets))}")
    return str(address)


def _parse_route(entry: dict[str, Any], table: int, family: IPVersion = 4) -> Route:
    """A route from `ip -d -j -N route show` (numbers, not names; absent means default)."""
    dst = entry.get("dst", "default")
    if dst == "default":
        dst = "0.0.0.0/0" if family == 4 else "::/0"
    net = ipaddress.ip_network(dst, strict=False)
    expires = entry.get("expires")
    return Route(
        dst=str(net.network_address),
        dst_len=net.prefixlen,
        gateway=entry.get("gateway"),
        oif=entry.get("dev"),
        metric=int(entry.get("metric", 0)),
        proto=int(entry.get("protocol", 3)),  # ip omits proto boot
        scope=int(entry.get("scope", 0)),
        table=int(entry.get("table", table)),
        type=int(entry.get("type", 1)),
        flags=tuple(entry.get("flags", ())),
        prefsrc=entry.get("prefsrc"),
        metrics=tuple(
            sorted((str(k), int(v)) for m in entry.get("metrics", ()) for k, v in m.items())
        ),
        family=family,
        expires=None if expires is None else int(expires),
        pref=entry.get("pref"),
        nexthops=tuple(
            Nexthop(
                gateway=hop.get("gateway"),
                oif=hop.get("dev"),
                weight=int(hop.get("weight", 1)),
                flags=tuple(hop.get("flags", ())),
            )
            for hop in entry.get("nexthops", ())
        ),
    )
