"""The LAN behind the daemon's box: a client namespace whose traffic the box forwards and
source-NATs out of whichever uplink its routing table picks, as a home or branch router
does; and ISPs that, as real ones do, forward from their customer only the customer's own
addresses (BCP 38). Together they make what a route change breaks visible in the lab: a
flow that keeps wan1's address on wan2 is dropped by wan2's ISP, as it would be out there.

``with Lan(lab, nat="snat") as lan:`` (inside the lab's block) adds to a running
:class:`~pingu.lab.lab.Lab`, and removes on exit, whatever it added:

===========================  ==========================  ===============================
where                        IPv4                        IPv6
===========================  ==========================  ===============================
client ns ``eth0``           100.100.1.2/24,             2001:db8:100::2/64,
(``PREFIX-lan``)             default via 100.100.1.1     default via 2001:db8:100::1
daemon ns ``lan0``           100.100.1.1/24              2001:db8:100::1/64
===========================  ==========================  ===============================

Neither range meets the lab's plan (100.64.i.0/24 and 2001:db8:i::/64 for i up to 0x3e,
198.51.100.0/24 and 2001:db8:f0ii::/64 for the transfers, the targets in 203.0.113.0/24,
192.0.2.0/24 and 2001:db8:ffff::/48). The internet has no route to the LAN: only NATed
traffic gets answers, to the uplink's own address, which the internet routes to that
uplink's ISP and the ISP delivers on its customer link.

- The daemon namespace forwards both families (``ip_forward``, ``conf.all.forwarding``,
  with ``accept_ra`` 2 on the uplinks so that they still take router advertisements as a
  host does) and holds the nftables tables ``ip pingu_lab_nat`` and ``ip6 pingu_lab_nat``:
  one postrouting rule per uplink for what comes from the LAN, ``masquerade`` or ``snat
  to <the uplink's address>`` (NAT66 alike for IPv6). Either also turns conntrack on in
  that namespace, for the box's own connections too.
- Each ISP namespace holds ``inet pingu_lab_bcp38``: forwarded packets that arrive on
  its customer link from a source outside the customer's networks (100.64.i.0/24,
  2001:db8:i::/64) are counted and dropped (:meth:`Lan.spoofed`). Only forwarded traffic:
  what is addressed to the ISP itself (neighbour discovery, pings of its gateway) passes.

Every ``nft`` and ``sysctl`` runs inside the lab's namespaces, never in the root one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from pingu.lab import _netns, _process
from pingu.lab.errors import LabError
from pingu.lab.lab import ISP_DOWNLINK, Lab

NatKind = Literal["masquerade", "snat"]
NAT_KINDS: tuple[NatKind, ...] = ("masquerade", "snat")
LAN_NET = ipaddress.IPv4Network("100.100.1.0/24")
LAN_NET6 = ipaddress.IPv6Network("2001:db8:100::/64")
BOX_LAN = "lan0"  # the box's LAN interface, in the daemon namespace
CLIENT_IF = "eth0"  # the client's, in its own namespace
NAT_TABLE = "pingu_lab_nat"
ISP_TABLE = "pingu_lab_bcp38"
CUSTOMER_LINK = ISP_DOWNLINK
CONNTRACK_TIMEOUT_S = 10.0
_registry = _process.Registry()


@dataclass(frozen=True)
class Tracked:
    """One conntrack entry of a namespace: the original direction (as the client sent it)
    and the reply direction (as NAT expects the answer: its ``reply_dst`` is the address
    the flow was NATed to). ``id`` is the kernel's: an entry deleted and made again for
    the same flow has another."""

    id: int
    family: int  # 4 or 6
    proto: int  # socket.IPPROTO_UDP, ...
    src: str
    dst: str
    sport: int | None
    dport: int | None
    reply_src: str
    reply_dst: str
    reply_sport: int | None
    reply_dport: int | None


class Lan:
    """A client namespace behind the daemon's box, NATed out of every uplink of ``lab``
    with ``nat`` (``masquerade`` or ``snat`` to the uplink's address), and the ISPs'
    source-address filters. Leaving the block removes all of it; the lab stays."""

    def __init__(self, lab: Lab, nat: NatKind = "masquerade") -> None:
        if nat not in NAT_KINDS:
            raise ValueError(f"nat must be one of {NAT_KINDS}, got {nat!r}")
        self.lab = lab
        self.nat: NatKind = nat
        self.client_ns = f"{lab.prefix}-lan"
        self.client_address = str(LAN_NET.network_address + 2)
        self.client_address6 = str(LAN_NET6.network_address + 2)
        self.box_address = str(LAN_NET.network_address + 1)
        self.box_address6 = str(LAN_NET6.network_address + 1)
        self._workdir: str | None = None
        self._made_ns = False
        self._filtered_isps: list[str] = []
        self._nat_installed = False
        self._forwarding = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Lan:
        _registry.add(id(self), self.client_ns, self.close)
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
        self.close()

    def _build(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix=f"{self.client_ns}-")
        daemon, client = self.lab.daemon_ns, self.client_ns
        with _process.netns_lock():
            _process.run(["ip", "netns", "add", client])
        self._made_ns = True
        self._sysctl(client, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
        self._ip(client, "link set lo up")
        self._ip(daemon, f"link add {BOX_LAN} type veth peer name {CLIENT_IF} netns {client}")
        self._ip(daemon, f"addr add {self.box_address}/{LAN_NET.prefixlen} dev {BOX_LAN}")
        self._ip(client, f"addr add {self.client_address}/{LAN_NET.prefixlen} dev {CLIENT_IF}")
        self._ip(daemon, f"link set {BOX_LAN} up")
        self._ip(client, f"link set {CLIENT_IF} up")
        plen6 = LAN_NET6.prefixlen
        self._ip(daemon, f"addr add {self.box_address6}/{plen6} dev {BOX_LAN} nodad")
        self._ip(client, f"addr add {self.client_address6}/{plen6} dev {CLIENT_IF} nodad")
        self._ip(client, f"route add default via {self.box_address} dev {CLIENT_IF}")
        self._ip(client, f"-6 route add default via {self.box_address6} dev {CLIENT_IF}")
        # A forwarding IPv6 node ignores router advertisements unless accept_ra is 2: the
        # uplinks keep behaving as the host they were before the LAN came.
        keep_ra = [f"net.ipv6.conf.{u}.accept_ra=2" for u in self.present_uplinks()]
        self._sysctl(daemon, *keep_ra, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        self._forwarding = True
        self._nft(daemon, self.nat_ruleset())
        self._nat_installed = True
        for uplink in self.lab.uplinks:
            isp = self.lab.isp_ns(uplink)
            self._nft(isp, self.isp_ruleset(uplink))
            self._filtered_isps.append(isp)

    def close(self) -> None:
        """Remove the client namespace, the NAT and the ISPs' filters (idempotent)."""
        if self._closed:
            return
        self._closed = True
        problems: list[str] = []
        with _process.SignalsDeferred():
            for isp in self._filtered_isps:
                problems += self._quietly(isp, ["nft", "delete", "table", "inet", ISP_TABLE])
            if self._nat_installed:
                for family in ("ip", "ip6"):
                    argv = ["nft", "delete", "table", family, NAT_TABLE]
                    problems += self._quietly(self.lab.daemon_ns, argv)
            if self._forwarding:
                argv = ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]
                problems += self._quietly(self.lab.daemon_ns, argv)
            if self._made_ns:
                problems += self._remove_client_ns()
            if self._workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
            _registry.remove(id(self))
        if problems:
            raise LabError(f"lan {self.client_ns}: teardown incomplete: " + "; ".join(problems))

    def _remove_client_ns(self) -> list[str]:
        ns = self.client_ns
        # Whatever still runs in it would keep it alive, unlisted, after `ip netns del`.
        pids = _process.run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                continue
        with _process.netns_lock():
            done = _process.run(["ip", "netns", "del", ns], check=False)
        if done.returncode != 0 and os.path.exists(f"/run/netns/{ns}"):
            return [f"ip netns del {ns}: {done.stderr.strip()}"]
        return []

    def _quietly(self, ns: str, argv: list[str]) -> list[str]:
        """Run ``argv`` in ``ns`` for the teardown: a namespace already gone (the lab
        closed first) is no problem; any other failure is reported."""
        if not os.path.exists(f"/run/netns/{ns}"):
            return []
        done = _process.run(["ip", "netns", "exec", ns, *argv], check=False)
        if done.returncode != 0 and os.path.exists(f"/run/netns/{ns}"):
            return [f"`{' '.join(argv)}` in {ns}: {done.stderr.strip()}"]
        return []

    # ------------------------------------------------------------------ the rulesets

    def present_uplinks(self) -> list[str]:
        """The lab's uplinks whose interface exists now."""
        text = self._ip(self.lab.daemon_ns, "-j link show")
        names = {link.get("ifname") for link in json.loads(text or "[]")}
        return [u for u in self.lab.uplinks if u in names]

    def nat_ruleset(self) -> str:
        """The daemon namespace's NAT, as ``nft -f`` reads it: what comes from the LAN
        leaves each uplink NATed to that uplink's address, in each family."""
        tables = []
        for family, net, address in (
            ("ip", LAN_NET, self.lab.local_address),
            ("ip6", LAN_NET6, self.lab.local_address6),
        ):
            rules = []
            for uplink in self.lab.uplinks:
                how = "masquerade" if self.nat == "masquerade" else f"snat to {address(uplink)}"
                rules.append(f'    {family} saddr {net} oifname "{uplink}" {how}')
            tables.append(
                f"table {family} {NAT_TABLE} {{\n"
                "  chain postrouting {\n"
                "    type nat hook postrouting priority srcnat; policy accept;\n"
                + "\n".join(rules)
                + "\n  }\n}\n"
            )
        return "".join(tables)

    def isp_ruleset(self, uplink: str) -> str:
        """``uplink``'s ISP: forward from the customer only the customer's own sources."""
        net4 = ipaddress.ip_network(f"{self.lab.local_address(uplink)}/24", strict=False)
        net6 = ipaddress.ip_network(f"{self.lab.local_address6(uplink)}/64", strict=False)
        return (
            f"table inet {ISP_TABLE} {{\n"
            "  counter spoofed4 { }\n"
            "  counter spoofed6 { }\n"
            "  chain forward {\n"
            "    type filter hook forward priority filter; policy accept;\n"
            f'    iifname "{CUSTOMER_LINK}" ip saddr != {net4} counter name "spoofed4" drop\n'
            f'    iifname "{CUSTOMER_LINK}" ip6 saddr != {net6} counter name "spoofed6" drop\n'
            "  }\n"
            "}\n"
        )

    # ------------------------------------------------------------------ looking at it

    def spoofed(self, uplink: str, family: int = 4) -> int:
        """Packets ``uplink``'s ISP dropped because their source was not its customer's
        (a flow that kept another uplink's address), in ``family``, so far."""
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, got {family!r}")
        argv = ["nft", "-j", "list", "counter", "inet", ISP_TABLE, f"spoofed{family}"]
        text = self.lab.run(self.lab.isp_ns(uplink), argv).stdout
        for item in json.loads(text).get("nftables", []):
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise LabError(f"no counter spoofed{family} in {self.lab.isp_ns(uplink)}: {text}")

    def conntrack(self) -> list[Tracked]:
        """The conntrack entries of the daemon's namespace, where the NAT is (never the
        machine's own table)."""
        return _dump_conntrack(self.lab.daemon_ns)

    def flow(self, sport: int, dport: int, proto: int = socket.IPPROTO_UDP) -> Tracked | None:
        """The daemon namespace's entry of the LAN's flow from port ``sport`` to ``dport``."""
        lan = (self.client_address, self.client_address6)
        for entry in self.conntrack():
            if (entry.proto, entry.sport, entry.dport) == (
                proto,
                sport,
                dport,
            ) and entry.src in lan:
                return entry
        return None

    def run(self, argv: list[str], *, ns: str = "lan", check: bool = True) -> str:
        """Run ``argv`` in the client namespace ("lan"), or in one of the lab's (its
        ``Lab.run`` names); its output."""
        if ns in ("lan", self.client_ns):
            argv = ["ip", "netns", "exec", self.client_ns, *argv]
            return _process.run(argv, check=check, env=_process.helper_env()).stdout
        return self.lab.run(ns, argv, check=check).stdout

    # ------------------------------------------------------------------ plumbing

    def _ip(self, ns: str, command: str) -> str:
        return _process.run(["ip", "-n", ns, *command.split()]).stdout

    def _sysctl(self, ns: str, *settings: str) -> None:
        _process.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])

    def _nft(self, ns: str, ruleset: str) -> None:
        assert self._workdir is not None
        path = os.path.join(self._workdir, f"{ns}.nft")
        with open(path, "w") as handle:
            handle.write(ruleset)
        _process.run(["ip", "netns", "exec", ns, "nft", "-f", path])


def _dump_conntrack(ns: str) -> list[Tracked]:
    """Every conntrack entry of both families in namespace ``ns`` (its full name), read
    through ctnetlink on a thread that entered ``ns`` first: the socket belongs to that
    namespace, and the machine's own table is never read."""
    found: list[Tracked] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            _netns.enter_thread(ns)
            from pyroute2 import Conntrack  # noqa: PLC0415 (only the flow tests need it)

            for number, family in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
                ct = Conntrack(nfgen_family=number)
                try:
                    found.extend(_tracked(family, e) for e in ct.dump_entries())
                finally:
                    ct.close()
        except BaseException as error:  # handed to the caller below
            failure.append(error)

    thread = threading.Thread(target=work, name=f"conntrack {ns}", daemon=True)
    thread.start()
    thread.join(CONNTRACK_TIMEOUT_S)
    if thread.is_alive():
        raise LabError(f"reading the conntrack table of {ns} took over {CONNTRACK_TIMEOUT_S} s")
    if failure:
        raise LabError(f"reading the conntrack table of {ns}: {failure[0]}")
    return found


def _tracked(family: int, entry: Any) -> Tracked:
    orig, reply = entry.tuple_orig, entry.tuple_reply
    return Tracked(
        id=int(entry.id),
        family=family,
        proto=int(orig.proto),
        src=str(ipaddress.ip_address(orig.saddr)),
        dst=str(ipaddress.ip_address(orig.daddr)),
        sport=orig.sport,
        dport=orig.dport,
        reply_src=str(ipaddress.ip_address(reply.saddr)),
        reply_dst=str(ipaddress.ip_address(reply.daddr)),
        reply_sport=reply.sport,
        reply_dport=reply.dport,
    )
