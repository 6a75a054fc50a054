"""The simulated network: namespaces for the daemon, one ISP per uplink and the internet,
built on enter and always torn down on exit.

Topology and addressing (uplink i = 1, 2, ... in the order given)::

    daemon ns                  ISP i ns                          internet ns
    UPLINK 100.64.i.2/24 ----- cust 100.64.i.1/24                lo: the targets, /32
      ethernet: a veth pair;   up 198.51.100.(4i+1)/30 --------- isp<i> 198.51.100.(4i+2)/30
      p2p: two tun devices     default via 198.51.100.(4i+2)     100.64.i.0/24 via (4i+1)
      joined by a relay,
      100.64.i.2 peer .1

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
_UPLINK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_registry = _process.Registry()


def prefixes_used() -> tuple[str, ...]:
    """The name prefix of every lab built in this process (for leak checks)."""
    return tuple(_registry.prefixes)


@dataclass(frozen=True)
class Uplink:
    """An uplink of the daemon's host: a name and how it is wired."""

    name: str
    kind: UplinkKind = "ethernet"


@dataclass(frozen=True)
class Route:
    """An IPv4 route of the daemon namespace, as the kernel reports it."""

    dst: str  # network address, "0.0.0.0" for a default route
    dst_len: int
    gateway: str | None
    oif: str | None  # interface name
    metric: int
    proto: int
    scope: int
    table: int
    type: int = 1  # RTN_UNICAST
    flags: tuple[str, ...] = ()
    prefsrc: str | None = None
    metrics: tuple[tuple[str, int], ...] = ()  # route metrics: ("advmss", 1360), ("mtu", 1400)

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


@dataclass
class _UplinkState:
    spec: Uplink
    index: int
    isp_ns: str
    present: bool = False
    relay: subprocess.Popen[bytes] | None = None
    lease: _Lease | None = None
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


class Lab:
    """``with Lab(uplinks=["wan1", Uplink("ppp0", "p2p")]) as lab:`` builds the network;
    leaving the block (normally, by an exception or Ctrl-C) removes every namespace the
    lab made and stops its processes. Use it from the main thread: helper processes are
    tied to the thread that started them."""

    def __init__(
        self,
        uplinks: Sequence[str | Uplink],
        targets: Sequence[str] = ("203.0.113.10",),
        *,
        prefix: str | None = None,
    ) -> None:
        self.prefix = prefix or f"pgl-{secrets.token_hex(3)}"
        specs = [u if isinstance(u, Uplink) else Uplink(u) for u in uplinks]
        _check_uplinks(specs)
        self.targets: tuple[str, ...] = tuple(_check_target(t) for t in targets)
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets must be distinct, and at least one: {targets!r}")
        self.daemon_ns = f"{self.prefix}-daemon"
        self.internet_ns = f"{self.prefix}-inet"
        self._uplinks = {
            spec.name: _UplinkState(spec, i, f"{self.prefix}-isp-{spec.name}")
            for i, spec in enumerate(specs, start=1)
        }
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
        self._sysctl(self.internet_ns, "net.ipv4.icmp_echo_ignore_all", "1")
        for target in self.targets:
            self._ip(self.internet_ns, f"addr add {target}/32 dev lo")
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
        self._sysctl(ns, "net.ipv4.conf.all.rp_filter", "0")
        self._sysctl(ns, "net.ipv4.conf.default.rp_filter", "0")

    def _build_isp(self, state: _UplinkState) -> None:
        isp, inet, peer = state.isp_ns, self.internet_ns, f"isp{state.index}"
        self._add_namespace(isp)
        self._sysctl(isp, "net.ipv4.ip_forward", "1")
        self._ip(isp, f"link add {ISP_UPLINK} type veth peer name {peer} netns {inet}")
        self._ip(isp, f"addr add {state.isp_transfer}/30 dev {ISP_UPLINK}")
        self._ip(isp, f"link set {ISP_UPLINK} up")
        self._ip(inet, f"addr add {state.internet_transfer}/30 dev {peer}")
        self._ip(inet, f"link set {peer} up")
        self._ip(isp, f"route add default via {state.internet_transfer} dev {ISP_UPLINK}")
        self._ip(inet, f"route add {state.subnet} via {state.isp_transfer} dev {peer}")

    def _create_access_link(self, state: _UplinkState) -> None:
        name, isp, daemon = state.name, state.isp_ns, self.daemon_ns
        if state.spec.kind == "ethernet":
            self._ip(daemon, f"link add {name} type veth peer name {ISP_DOWNLINK} netns {isp}")
            self._ip(daemon, f"addr add {state.local}/24 dev {name}")
            self._ip(isp, f"addr add {state.gateway}/24 dev {ISP_DOWNLINK}")
        else:
            # Persistent tun devices: they exist (carrier down) until the relay attaches.
            self._ip(daemon, f"tuntap add dev {name} mode tun")
            self._ip(isp, f"tuntap add dev {ISP_DOWNLINK} mode tun")
            self._ip(daemon, f"addr add {state.local} peer {state.gateway} dev {name}")
            self._ip(isp, f"addr add {state.gateway} peer {state.local} dev {ISP_DOWNLINK}")
        state.isp_gateways = {state.gateway}
        state.present = True
        self._ip(isp, f"link set {ISP_DOWNLINK} up")
        self._ip(daemon, f"link set {name} up")
        if state.spec.kind == "p2p":
            sides = ["--a", f"{daemon}:{name}", "--b", f"{isp}:{ISP_DOWNLINK}"]
            state.relay = self._spawn("relay", *sides)
        self._wait_carrier(state, True)

    def _start_responder(self) -> None:
        assert self._workdir is not None
        path = os.path.join(self._workdir, "responder.sock")
        targets = [arg for t in self.targets for arg in ("--target", t)]
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

    def ifindex(self, uplink: str) -> int:
        """The current ifindex of ``uplink`` in the daemon namespace."""
        return int(self._link(uplink)["ifindex"])

    def carrier(self, uplink: str) -> bool:
        """Whether ``uplink`` has carrier in the daemon namespace."""
        return "LOWER_UP" in self._link(uplink).get("flags", [])

    def routes(self, table: int = 254) -> list[Route]:
        """The IPv4 routes of ``table`` in the daemon namespace."""
        text = self._ip(self.daemon_ns, f"-d -j -N -4 route show table {int(table)}")
        return [_parse_route(entry, table) for entry in json.loads(text or "[]")]

    def default_routes(self, table: int = 254) -> list[Route]:
        """The IPv4 default routes of ``table`` in the daemon namespace."""
        return [r for r in self.routes(table) if r.is_default]

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
        """Echo ``target`` (default: the first) from the daemon namespace, out of ``uplink``
        only when one is given. The kernel still needs a route out of it (the DHCP one,
        say), except on a p2p uplink, where it takes any destination as on-link."""
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

    def _delete_route(self, spec: str) -> None:
        try:
            self._ip(self.daemon_ns, "route del " + spec)
        except LabError as exc:
            if "No such process" not in str(exc):
                raise

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
        self._wait_carrier(state, up)

    def cut_upstream(self, uplink: str) -> None:
        """The ISP loses its way to the internet (a blackhole default route in the ISP
        namespace); the uplink itself stays up."""
        self._ip(self._state(uplink).isp_ns, "route replace blackhole default")

    def restore_upstream(self, uplink: str) -> None:
        """The ISP reaches the internet again."""
        state = self._state(uplink)
        route = f"default via {state.internet_transfer} dev {ISP_UPLINK}"
        self._ip(state.isp_ns, "route replace " + route)

    def set_loss(self, target: str | None, share: float) -> None:
        """Drop ``share`` (0..1) of the echoes to ``target`` (None: every target), in the
        deterministic pattern described in :mod:`pingu.lab.responder`: echo n, counted
        from this call, is dropped iff floor(n*share) > floor((n-1)*share)."""
        self._control().request("set_loss", target=target, share=share)

    def set_delay(self, target: str | None, ms: float) -> None:
        """Answer echoes to ``target`` (None: every target) ``ms`` milliseconds late."""
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

    def recreate_uplink(self, uplink: str) -> int:
        """A redial: the interface is deleted (if present) and created again with the same
        name and addresses but a new ifindex, which is returned. There is no lease yet:
        call :meth:`dhcp_add` as the client would."""
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

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        _process.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])

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


def _lease_route(state: _UplinkState, lease: _Lease) -> str:
    """The `ip route` arguments of the default route ``lease`` installs on ``state``."""
    via = f"via {lease.gateway} " if lease.gateway else ""
    route = f"default {via}dev {state.name} proto {lease.proto} metric {int(lease.metric)}"
    if lease.options:
        route += " " + lease.options
    if lease.gateway is None:
        return route + " scope link"
    if state.spec.kind == "p2p" and "onlink" not in lease.options.split():
        return route + " onlink"
    return route


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
    address = ipaddress.IPv4Address(text)
    if not any(address in net for net in TARGET_NETS):
        raise ValueError(f"target {text} must be in {' or '.join(map(str, TARGET_NETS))}")
    return str(address)


def _parse_route(entry: dict[str, Any], table: int) -> Route:
    """A route from `ip -d -j -N route show` (numbers, not names; absent means default)."""
    dst = entry.get("dst", "default")
    net = ipaddress.IPv4Network("0.0.0.0/0" if dst == "default" else dst, strict=False)
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
    )
