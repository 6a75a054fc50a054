"""Real address-configuration software in the lab: DHCPv4 servers and router-advertisement
senders on an uplink's ISP side, and the DHCP/RA clients small routers really run on the
daemon side, so that pingu is tested against the routes those programs really install,
renew, put back and take away, not only against the lab's simulated ``dhcp_add``.

What runs where::

    daemon ns (uplink wanN)                 ISP N ns (its downlink "cust")
    DhcpcdClient   dhcpcd (DHCPv4 + RA)  <- DnsmasqServer  dnsmasq (DHCPv4, RA if asked)
    UdhcpcClient   busybox udhcpc        <- RadvdServer    radvd (RA only)
    KernelRA       the kernel (accept_ra=2)

Each program is a Debian package (``scripts/test-all`` installs the missing ones:
dnsmasq-base, radvd, dhcpcd-base, udhcpc; unshare and mount come with util-linux).

Isolation from the host. The clients' real hooks rewrite /etc/resolv.conf, write leases
under /var/lib and pid files and control sockets under /run; the servers have lease and
pid files too. Every program therefore runs as ``ip netns exec NS unshare --mount --uts
--propagation private sh -c SANDBOX``: in its own mount namespace (mounts never propagate
back), where a per-process directory is bind-mounted over /run and /var/lib and a private
copy over /etc/resolv.conf (and over /dev/log when that is a socket, so the hooks' logger
and dhcpcd's syslog stay off the host's journal), and in its own UTS namespace, so that a
hostname hook cannot rename the machine. :class:`Sandbox` says where each host path is for
the program. Servers are also given explicit paths (``--conf-file=/dev/null``,
``--dhcp-leasefile``, ``-C``, ``-p``) so that none of them reads the host's configuration.

Addressing. The ISP side needs 2001:db8:N::1/64 and the link-local fe80::1 on its downlink
to advertise a prefix; the lab may give them already (issue 14), otherwise
:func:`ensure_isp_ipv6` adds them (idempotent, without DAD). A client takes its uplink
over first: the lab's simulated DHCP route is withdrawn and the static 100.64.N.2/24 (and
2001:db8:N::2/64, when the lab has it) removed, so that the lease is the only address.
stop, kill and restart leave the uplink as the client leaves it (that is what the tests
look at); :meth:`Client.close` then clears what the client left and puts the lab's static
addresses and accept_ra back, as the rest of the lab expects them.

What each client does to the routes, as ``tests/netns/test_lab_clients.py`` observes it
(Debian 12: dhcpcd 9.4.1, busybox 1.35, dnsmasq 2.90, radvd 2.19). This is what pingu
must coexist with:

dhcpcd (per-interface mode, Debian's dhcpcd.conf options; IPv4LL off, as 169.254/16 is no
documentation range; renew(): SIGUSR1):
  - start: ``default via GW dev wanN proto dhcp src ADDR metric M`` and the subnet route
    ``proto dhcp scope link metric M``, M = 1000 + ifindex unless ``metric`` is set; the
    address is ``noprefixroute`` (the kernel adds no route of its own) and carries the
    lease time as its valid lifetime. IPv4 is bound after dhcpcd's ARP probe (~6 s).
    IPv6: dhcpcd sets the uplink's accept_ra to 0 (and leaves it 0 when it stops, even
    without ``persistent``) and handles RAs itself, forwarding or not: a SLAAC address
    (RFC 7217 "slaac private", not the MAC's EUI-64), ``2001:db8:N::/64 proto ra`` and
    ``default via fe80::... proto ra metric M``, without a kernel expiry (dhcpcd times
    them).
  - renewal, same gateway: no route message at all.
  - a default route someone deleted (pingu's capture): put back at dhcpcd's next renewal
    (IPv4; every T1, 5 s here) or at the next RA (IPv6), not when it is deleted.
  - new gateway at a renewal: the old default route deleted, then the new one added (two
    messages, no NLM_F_REPLACE: a moment without a default route on that uplink).
  - lease loss (no server; T1 renew, T2 rebind, then expiry): the address goes, removed
    by dhcpcd ("DHCP lease expired") or, as it carries the lease as its lifetime, by the
    kernel a moment before ("pid 0 deleted IP address"): a race, either way dhcpcd then
    deletes the subnet and default routes and runs its EXPIRE hook; it goes on asking.
  - stop (SIGTERM): with ``persistent`` (Debian's default) address and routes stay;
    without, dhcpcd deletes them (IPv6 too). kill (a crash): everything stays.
  - restart: it reads its lease file, rebinds the same address, and the routes are left
    untouched (no route message); after a kill too.

udhcpc (Debian's /etc/udhcpc/default.script; renew(): SIGUSR1):
  - start: ``ifconfig`` sets the address (``valid_lft forever``, with the kernel's
    ``proto kernel`` subnet route), then ``ip route add default via GW dev wanN``:
    ``proto boot``, metric 0. A second uplink's udhcpc gets ``File exists`` for its own
    default route (same prefix, same metric 0): only one udhcpc uplink has a default
    route at a time, until the first one's is deleted and the second renews.
  - renewal, same gateway: nothing changes (its ``ip route add`` fails, ``File exists``);
    the route deleted meanwhile (pingu's capture): added again. udhcpc ignores T1/T2 and
    renews at half the lease (60 s with dnsmasq's 120 s; seen by hand, not asserted).
  - new gateway: ``ip route flush exact 0.0.0.0/0 dev wanN`` then ``ip route add``: a
    delete, then an add (a moment without any default route).
  - lease loss: "lease lost" at expiry, then ``deconfig``: every IPv4 address and route of
    the uplink flushed; it goes on discovering.
  - stop: with ``-R`` (the handle's default; ifupdown's ifdown releases too) a DHCPRELEASE
    and ``deconfig``: the address is flushed, and its routes vanish with it *without any
    RTM_DELROUTE* (the kernel sends none for routes that die with their address); without
    ``-R`` everything stays. kill: everything stays. restart: the same address again
    (dnsmasq knows the client) and ``ip route add``.

The kernel (accept_ra=2 accepts RAs even when the namespace forwards; 1 ignores them then):
``default via fe80::1 proto ra metric 1024 expires N`` (N <= the router lifetime) and the
prefix route ``proto kernel metric 256 expires N``, an EUI-64 SLAAC address; a deleted
default route comes back with the next RA; an RA with router lifetime 0 (a reload with
``AdvDefaultLifetime 0``, or radvd's last RA when it stops) removes it at once. The
kernel has no "renew": it solicits only when the link comes up.

dnsmasq gives no lease shorter than two minutes (its manual: "The minimum lease time is
two minutes"): :class:`DnsmasqServer` sends T1/T2 of 5/8 s for fast renewals, and the
lease-loss test waits out the 120 s.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from pingu.lab import _process
from pingu.lab.errors import LabError
from pingu.lab.lab import ISP_DOWNLINK, Lab

# Generous bounds (they only matter when something is wrong): once, while other labs ran
# on the machine, a dhcpcd mid-renewal had not handled its SIGTERM after 5 s; a netlink
# change waiting for the kernel's RTNL lock, which namespace teardowns can hold for
# seconds, is the likely cause (not reproduced in 38 stops on a quiet machine).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0  # for a graceful exit, before SIGKILL
LEASE_PREFIX_LEN = 24  # the ISPs' networks, 100.64.N.0/24, which dnsmasq leases from
KILL_TIMEOUT = 10.0  # for the kernel to reap what SIGKILL hit
LEASE_TIMEOUT = 45.0
POLL_INTERVAL = 0.05
RESOLV_CONF = "/etc/resolv.conf"
PRIVATE_DIRS = ("/run", "/var/lib")  # bind-mounted per process over the host's
ISP_LINK_LOCAL = "fe80::1"

# Debian package of each program the lab runs (for the messages of a missing one).
PACKAGES = {
    "dnsmasq": "dnsmasq-base",
    "radvd": "radvd",
    "dhcpcd": "dhcpcd-base",
    "udhcpc": "udhcpc",
    "unshare": "util-linux",
    "mount": "mount",
    "keepalived": "keepalived",
}
PROJECT_SBIN = str(Path(__file__).resolve().parents[2] / ".cache" / "debian" / "usr" / "sbin")
UDHCPC_SCRIPTS = ("/etc/udhcpc/default.script", "/usr/share/udhcpc/default.script")

T = TypeVar("T")
_registry = _process.Registry()

# Run inside the new mount namespace, as root: bind the private paths, then become the
# program (exec: its pid is the one we started). /run first, so that even mount's own
# bookkeeping (/run/mount) stays private; -n asks it to keep none. A resolv.conf that
# links into /run needs no mount: its private copy is in the private /run already.
_SANDBOX_SCRIPT = """set -eu
root=$1; resolv=$2; shift 2
mount -n --bind "$root/run" /run
mount -n --bind "$root/var/lib" /var/lib
if [ -n "$resolv" ]; then mount -n --bind "$root/resolv.conf" "$resolv"; fi
if [ -S /dev/log ] && [ ! -L /dev/log ]; then mount -n --bind "$root/dev-log" /dev/log; fi
exec "$@"
"""


def missing_programs(programs: Iterable[str] = PACKAGES) -> list[str]:
    """The programs (of ``programs``) this machine lacks, each with its Debian package."""
    return [f"{p} (Debian package {PACKAGES.get(p, p)})" for p in programs if not _which(p)]


def require(*programs: str) -> None:
    """Raise LabError naming every missing program and the package that brings it."""
    missing = missing_programs(programs)
    if missing:
        raise LabError("not installed: " + ", ".join(missing) + " (scripts/test-all installs them)")


def _which(program: str) -> str | None:
    # Root's PATH may lack the sbin directories when run under sudo or nox; last, the
    # project's cache, where scripts/test-all unpacks programs it must not install
    # (keepalived: its package would start a service on this machine).
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", PROJECT_SBIN])
    return shutil.which(program, path=path)


# ---------------------------------------------------------------------- addressing


def uplink_number(lab: Lab, uplink: str) -> int:
    """N of uplink wanN's networks 100.64.N.0/24 and 2001:db8:N::/64."""
    return int(lab.gateway(uplink).split(".")[2])


def ipv6_prefix(lab: Lab, uplink: str) -> ipaddress.IPv6Network:
    """The documentation prefix advertised on ``uplink``: 2001:db8:N::/64."""
    return ipaddress.IPv6Network(f"2001:db8:{uplink_number(lab, uplink):x}::/64")


def ensure_isp_ipv6(lab: Lab, uplink: str) -> None:
    """Give the ISP's downlink 2001:db8:N::1/64 and fe80::1/64 unless it has them (the
    lab's IPv6 addressing may have done it already), without duplicate-address detection
    so that they are usable at once."""
    ns = lab.isp_ns(uplink)
    have = _addresses(lab, ns, ISP_DOWNLINK, 6)
    wanted = [f"{ipv6_prefix(lab, uplink)[1]}/64", f"{ISP_LINK_LOCAL}/64"]
    for address in wanted:
        if address not in have:
            lab.run(ns, ["ip", "-6", "addr", "add", address, "dev", ISP_DOWNLINK, "nodad"])


def isp_link_locals(lab: Lab, uplink: str) -> set[str]:
    """Every link-local address of the ISP's downlink (an RA may come from any of them)."""
    found = _addresses(lab, lab.isp_ns(uplink), ISP_DOWNLINK, 6)
    return {a.split("/")[0] for a in found if a.startswith("fe80:")}


def _addresses(lab: Lab, ns: str, dev: str, family: int) -> list[str]:
    text = lab.run(ns, ["ip", "-j", f"-{family}", "addr", "show", "dev", dev]).stdout
    return [
        f"{info['local']}/{info['prefixlen']}"
        for link in json.loads(text or "[]")
        for info in link.get("addr_info", ())
    ]


@dataclass(frozen=True)
class ClientRoute:
    """A route of the daemon namespace (IPv4 or IPv6), as the kernel reports it."""

    family: int  # 4 or 6
    dst: str  # "default" or a prefix
    gateway: str | None
    dev: str | None
    proto: int  # 2 kernel, 3 boot, 9 ra, 16 dhcp
    metric: int
    expires: int | None  # seconds left, for routes the kernel times out (RA)
    prefsrc: str | None = None


def routes(lab: Lab, family: int, dev: str | None = None) -> list[ClientRoute]:
    """The routes of table main in the daemon namespace (of ``dev`` only, if given)."""
    argv = ["ip", "-j", "-d", "-N", f"-{family}", "route", "show", "table", "main"]
    if dev is not None:
        argv += ["dev", dev]
    entries = json.loads(lab.run("daemon", argv).stdout or "[]")
    return [_route(entry, family, dev) for entry in entries]


def default_routes(lab: Lab, family: int, dev: str | None = None) -> list[ClientRoute]:
    """The default routes of table main in the daemon namespace."""
    return [r for r in routes(lab, family, dev) if r.dst == "default"]


def _route(entry: dict[str, Any], family: int, dev: str | None) -> ClientRoute:
    expires = entry.get("expires")
    return ClientRoute(
        family=family,
        dst=str(entry.get("dst", "default")),
        gateway=entry.get("gateway"),
        dev=entry.get("dev", dev),
        proto=int(entry.get("protocol", 3)),  # ip omits proto boot
        metric=int(entry.get("metric", 0)),
        expires=None if expires is None else int(expires),
        prefsrc=entry.get("prefsrc"),
    )


# ---------------------------------------------------------------------- isolation


class Sandbox:
    """A private view of the host's state files for one process: a directory holding
    its own /run, /var/lib and /etc/resolv.conf (a copy of the host's), bound over the
    host's in a mount namespace of its own."""

    def __init__(self, root: Path) -> None:
        if self._inside_any_private_dir(os.path.realpath(root)):
            # Its own /run mount would hide the directory it is bound from.
            raise LabError(f"a sandbox cannot live under {' or '.join(PRIVATE_DIRS)}: {root}")
        self.root = root
        for directory in PRIVATE_DIRS:
            (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
        resolved = os.path.realpath(RESOLV_CONF)
        if not os.path.isfile(resolved):
            # A hook would create it on the host: no mount can hide a file not there.
            raise LabError(f"{RESOLV_CONF} does not exist here; refusing to run a DHCP client")
        inside = self._inside_private_dir(resolved)
        self.resolv_conf = inside if inside is not None else root / "resolv.conf"
        self.resolv_conf.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(resolved, self.resolv_conf)
        # When resolv.conf is a link into /run, the private /run holds the file already.
        self._bind_resolv = "" if inside is not None else resolved
        (root / "dev-log").touch()

    @staticmethod
    def _inside_any_private_dir(host_path: str) -> bool:
        return any(host_path.startswith(directory + "/") for directory in PRIVATE_DIRS)

    def _inside_private_dir(self, host_path: str) -> Path | None:
        if self._inside_any_private_dir(host_path):
            return self.root / host_path.lstrip("/")
        return None

    def path(self, host_path: str) -> Path:
        """Where the sandboxed process's ``host_path`` (under /run or /var/lib) really is."""
        if host_path == RESOLV_CONF:
            return self.resolv_conf
        inside = self._inside_private_dir(host_path)
        if inside is None:
            raise ValueError(f"{host_path} is not private to the sandbox")
        return inside

    def argv(self, netns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run in ``netns``, in this sandbox."""
        return [
            "ip", "netns", "exec", netns,
            "unshare", "--mount", "--uts", "--propagation", "private", "--",
            "sh", "-c", _SANDBOX_SCRIPT, "pingu-lab-sandbox",
            str(self.root), self._bind_resolv, *argv,
        ]  # fmt: skip


# ---------------------------------------------------------------------- processes


class Program:
    """One real program of the lab, in a namespace and a sandbox: started with a bounded
    wait for its readiness, stopped with SIGTERM then SIGKILL after a bound (with every
    process of its group), and stopped at interpreter exit if a test forgot to."""

    program: ClassVar[str]  # the executable, e.g. "dnsmasq"

    def __init__(self, lab: Lab, ns: str, label: str) -> None:
        require(self.program, "unshare", "mount")
        self.lab = lab
        self.ns = ns
        self.label = label
        self.directory = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-{label}-"))
        try:
            self.sandbox = Sandbox(self.directory / "root")
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self._log_path = self.directory / "output.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._final_log: str | None = None
        self.pids: list[int] = []  # of every start, for the check that none survives

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} pid={self.pid}>"

    # what a program says about itself

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """Whether the started program is up (polled until it is, within the bound)."""
        raise NotImplementedError

    # lifecycle

    def __enter__(self) -> Program:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The program's own pid while it runs (``ip netns exec`` and the sandbox exec it)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the program and wait (at most ``timeout``) until it is ready."""
        if self.running:
            raise LabError(f"{self.label} is running already")
        if self._final_log is not None:
            raise LabError(f"{self.label} is closed")
        self._starts += 1
        argv = self._argv()
        with open(self._log_path, "ab") as output:
            output.write(f"--- start {self._starts}: {' '.join(argv)}\n".encode())
            output.flush()
            proc = subprocess.Popen(
                self.sandbox.argv(self.ns, argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=_process.helper_env(),
                start_new_session=True,  # its own group: its children go with it
            )
        self._proc = proc
        self.pids.append(proc.pid)
        _registry.add(id(self), self.lab.prefix, self._stop_at_exit)
        try:
            self._wait(lambda: _comm(proc.pid) == self.program and self._ready(), timeout,
                       "to be ready")  # fmt: skip
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, as a service manager stops it (the program does what it does on
        exit: release, deconfigure, a final RA); SIGKILL after ``timeout``. Returns its
        exit status (None when it was not running)."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL, as a crash: the program cleans nothing up."""
        return self._end(signal.SIGKILL, KILL_TIMEOUT)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop (gracefully) and start again, with the same sandbox: its lease files
        and identity (DUID) survive, as they do on a real box."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the program if it runs and remove its directory; its log stays readable
        (idempotent)."""
        self.stop()
        if self._final_log is None:
            self._final_log = self.log()
            shutil.rmtree(self.directory, ignore_errors=True)

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the program."""
        if self._proc is None or not self.running:
            raise LabError(f"{self.label} is not running")
        self._proc.send_signal(signum)

    def log(self) -> str:
        """Everything the program wrote (stdout and stderr), every start included."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float, *, after: int = 0) -> None:
        """Wait (bounded) until the log holds ``text`` past offset ``after``."""
        self._wait(lambda: text in self.log()[after:], timeout, f"to log {text!r}",
                   must_run=False)  # fmt: skip

    def _end(self, signum: int, timeout: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        _registry.remove(id(self))
        if proc.poll() is None:
            proc.send_signal(signum)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid)
                proc.wait(KILL_TIMEOUT)
        # Helpers it forked (dhcpcd's privilege-separated proxies, radvd's privsep
        # process) may outlive it by a moment, or forever after a SIGKILL.
        _end_group(proc.pid)
        return proc.returncode

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.kill()

    def _wait(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        *,
        must_run: bool = True,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if must_run and not self.running:
                code = self._proc.returncode if self._proc else None
                raise LabError(f"{self.label} exited ({code}) waiting {what}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise LabError(f"{self.label}: timed out after {timeout} s {what}:\n{self.log()}")
            time.sleep(POLL_INTERVAL)


def _comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return None


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _end_group(pgid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT
    while group_members(pgid):
        if time.monotonic() > deadline:
            _killpg(pgid)
            if time.monotonic() > deadline + KILL_TIMEOUT:
                raise LabError(f"processes of group {pgid} survive SIGKILL: "
                               f"{group_members(pgid)}")  # fmt: skip
        time.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------------- servers


class DnsmasqServer(Program):
    """dnsmasq on the ISP side of ``uplink``: a DHCPv4 server (and, with ``ra``, a
    router-advertisement sender) with nothing of the host's: no configuration file, no
    DNS (``--port=0``), its lease file in its own directory.

    Leases come from 100.64.N.``first``-``last`` (never .1, the ISP, nor .2, the lab's
    static address), with ``router`` (default the ISP's 100.64.N.1; another address of
    the /24 is given to the ISP as well, a new gateway) and ``lease_time`` seconds
    (dnsmasq's minimum is 120). ``renew_after``/``rebind_after`` send T1/T2, so that a
    client that honours them renews in seconds. With ``ra``: RAs for 2001:db8:N::/64
    (SLAAC, no DHCPv6) every ``ra_interval`` s with ``router_lifetime`` s."""

    program = "dnsmasq"

    def __init__(
        self,
        lab: Lab,
        uplink: str,
        *,
        lease_time: int = 120,
        renew_after: int | None = 5,
        rebind_after: int | None = 8,
        router: str | None = None,
        first: int = 10,
        last: int = 200,
        ra: bool = False,
        ra_interval: int = 4,
        router_lifetime: int = 30,
    ) -> None:
        n = uplink_number(lab, uplink)
        if not 3 <= first <= last <= 254:
            raise ValueError(f"lease range .{first}-.{last} must lie within .3-.254")
        if lease_time < 120:
            raise ValueError("dnsmasq gives no lease shorter than 120 s")
        router = router or lab.gateway(uplink)
        if ipaddress.IPv4Address(router) not in ipaddress.IPv4Network(f"100.64.{n}.0/24"):
            raise ValueError(f"router {router} must be in 100.64.{n}.0/24")
        super().__init__(lab, lab.isp_ns(uplink), f"dnsmasq-{uplink}")
        self.uplink = uplink
        self.first, self.last = f"100.64.{n}.{first}", f"100.64.{n}.{last}"
        self.router = router
        self.lease_time = lease_time
        self.renew_after, self.rebind_after = renew_after, rebind_after
        self.ra, self.ra_interval, self.router_lifetime = ra, ra_interval, router_lifetime
        self.leases = self.directory / "dnsmasq.leases"
        self._added: set[str] = set()  # router addresses given to the ISP for this server

    def _argv(self) -> list[str]:
        argv = [
            "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--log-dhcp",
            "--conf-file=/dev/null", "--port=0", "--pid-file=",
            f"--interface={ISP_DOWNLINK}", "--bind-interfaces", "--dhcp-authoritative",
            f"--dhcp-leasefile={self.leases}",
            f"--dhcp-range={self.first},{self.last},255.255.255.0,{self.lease_time}",
            f"--dhcp-option=option:router,{self.router}",
        ]  # fmt: skip
        if self.renew_after is not None:
            argv.append(f"--dhcp-option=option:T1,{self.renew_after}")
        if self.rebind_after is not None:
            argv.append(f"--dhcp-option=option:T2,{self.rebind_after}")
        if self.ra:
            argv += [
                "--enable-ra",
                f"--dhcp-range={ipv6_prefix(self.lab, self.uplink).network_address},ra-only,64",
                f"--ra-param={ISP_DOWNLINK},{self.ra_interval},{self.router_lifetime}",
            ]
        return argv

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self.router not in {a.split("/")[0] for a in self._isp_addresses(4)}:
            # A new gateway: the ISP answers on it too, until this server is closed.
            self._ip_addr("add", self.router)
            self._added.add(self.router)
        if self.ra:
            ensure_isp_ipv6(self.lab, self.uplink)
        super().start(timeout)

    def close(self) -> None:
        super().close()
        for address in sorted(self._added):
            self._ip_addr("del", address)
        self._added.clear()

    def _ip_addr(self, verb: str, address: str) -> None:
        self.lab.run(self.ns, ["ip", "addr", verb, f"{address}/24", "dev", ISP_DOWNLINK])

    def _isp_addresses(self, family: int) -> list[str]:
        return _addresses(self.lab, self.ns, ISP_DOWNLINK, family)

    def _ready(self) -> bool:
        # Its DHCP socket bound is a kernel fact, later than any log line; the pid tells
        # it from another server's.
        argv = ["ss", "-H", "-ulnp", "sport", "=", ":67"]
        sockets = self.lab.run(self.ns, argv, check=False).stdout
        return f"pid={self.pid}," in sockets and (
            not self.ra or "router advertisement" in self.log()
        )


class RadvdServer(Program):
    """radvd on the ISP side of ``uplink``: router advertisements from fe80::1 for
    2001:db8:N::/64 (on-link, autonomous: SLAAC) every ``min_interval``-``max_interval``
    s (radvd allows 3..4 at the least) with a router lifetime of ``router_lifetime`` s.
    On SIGTERM radvd sends a final RA with router lifetime 0 ("sending stop adverts");
    :meth:`set_router_lifetime` rewrites its configuration and reloads it (SIGHUP)."""

    program = "radvd"

    def __init__(
        self,
        lab: Lab,
        uplink: str,
        *,
        router_lifetime: int = 30,
        min_interval: float = 3,
        max_interval: float = 4,
    ) -> None:
        # radvd logs values out of radvd.conf(5)'s ranges and goes on with others.
        if not (4 <= max_interval <= 1800 and 3 <= min_interval <= 0.75 * max_interval):
            raise ValueError("radvd needs 4 <= max_interval <= 1800, 3 <= min <= 0.75 max")
        self._check_lifetime(router_lifetime, max_interval)
        super().__init__(lab, lab.isp_ns(uplink), f"radvd-{uplink}")
        self.uplink = uplink
        self.router_lifetime = router_lifetime
        self.min_interval, self.max_interval = min_interval, max_interval
        self.config = self.directory / "radvd.conf"
        self.pid_file = self.directory / "radvd.pid"
        self._write_config()

    @staticmethod
    def _check_lifetime(seconds: int, max_interval: float) -> None:
        if seconds != 0 and not max_interval <= seconds <= 9000:
            raise ValueError(f"router lifetime {seconds}: 0, or {max_interval}..9000 s")

    def _write_config(self) -> None:
        prefix = ipv6_prefix(self.lab, self.uplink)
        self.config.write_text(
            f"interface {ISP_DOWNLINK} {{\n"
            "  AdvSendAdvert on;\n"
            f"  MinRtrAdvInterval {self.min_interval};\n"
            f"  MaxRtrAdvInterval {self.max_interval};\n"
            f"  AdvDefaultLifetime {self.router_lifetime};\n"
            f"  AdvRASrcAddress {{ {ISP_LINK_LOCAL}; }};\n"
            f"  prefix {prefix} {{\n"
            "    AdvOnLink on;\n"
            "    AdvAutonomous on;\n"
            "  };\n"
            "};\n"
        )

    def _argv(self) -> list[str]:
        return ["radvd", "--nodaemon", "--logmethod", "stderr", "--debug", "1",
                "--config", str(self.config), "--pidfile", str(self.pid_file)]  # fmt: skip

    def start(self, timeout: float = START_TIMEOUT) -> None:
        ensure_isp_ipv6(self.lab, self.uplink)
        self.pid_file.unlink(missing_ok=True)
        super().start(timeout)

    def _ready(self) -> bool:
        # radvd writes its pid file once its configuration and sockets are set up.
        return self.pid_file.exists()

    def set_router_lifetime(self, seconds: int, timeout: float = START_TIMEOUT) -> None:
        """Advertise ``seconds`` as the router lifetime from now on (0: "I am no default
        router", which makes the hosts drop their default route via it at once)."""
        self.router_lifetime = seconds
        self._write_config()
        offset = len(self.log())
        self.send_signal(signal.SIGHUP)
        self.wait_log("resuming normal operation", timeout, after=offset)


# ---------------------------------------------------------------------- clients


class _UplinkTakeover:
    """Makes the client's lease the only address of an uplink: the lab's simulated
    DHCP route withdrawn, its static addresses removed; afterwards, whatever the client
    left (addresses, routes, accept_ra) is cleared and the lab's addressing put back."""

    def __init__(self, lab: Lab, uplink: str, families: Sequence[int]) -> None:
        self.lab, self.uplink, self.families = lab, uplink, families
        n = uplink_number(lab, uplink)
        self._static = {4: f"{lab.local_address(uplink)}/24", 6: f"2001:db8:{n:x}::2/64"}
        self._accept_ra = f"net.ipv6.conf.{uplink}.accept_ra"
        self.removed: list[tuple[int, str]] = []
        self.saved_accept_ra: str | None = None
        self.taken = False

    def take(self) -> None:
        if self.taken:
            return
        kind = self._ip("-j", "link", "show", "dev", self.uplink)
        if json.loads(kind)[0].get("link_type") != "ether":
            raise LabError(f"{self.uplink} is not an ethernet uplink: no DHCP/RA on it")
        try:
            self.lab.dhcp_withdraw(self.uplink)
        except LabError as exc:
            if "no lease" not in str(exc):
                raise
        for family in self.families:
            address = self._static[family]
            if address in _addresses(self.lab, "daemon", self.uplink, family):
                self._ip(f"-{family}", "addr", "del", address, "dev", self.uplink)
                self.removed.append((family, address))
        if 6 in self.families:
            self.saved_accept_ra = self._sysctl(self._accept_ra)
        self.taken = True

    def give_back(self) -> None:
        if not self.taken:
            return
        if 4 in self.families:
            self._ip("-4", "addr", "flush", "dev", self.uplink)  # its routes go with them
        if 6 in self.families:
            self._ip("-6", "addr", "flush", "dev", self.uplink, "scope", "global")
            self._ip("-6", "route", "flush", "dev", self.uplink, "proto", "ra")
            prefix = str(ipv6_prefix(self.lab, self.uplink))
            # The RA's on-link prefix route is the kernel's, not tied to an address.
            self.lab.run("daemon", ["ip", "-6", "route", "del", prefix, "dev", self.uplink],
                         check=False)  # fmt: skip
        for family, address in self.removed:
            extra = ["nodad"] if family == 6 else []
            self._ip(f"-{family}", "addr", "add", address, "dev", self.uplink, *extra)
        if self.saved_accept_ra is not None:
            self.lab.run(
                "daemon", ["sysctl", "-q", "-w", f"{self._accept_ra}={self.saved_accept_ra}"]
            )
        self.removed.clear()
        self.saved_accept_ra = None
        self.taken = False

    def _ip(self, *args: str) -> str:
        return self.lab.run("daemon", ["ip", *args]).stdout

    def _sysctl(self, key: str) -> str:
        return self.lab.run("daemon", ["sysctl", "-n", key]).stdout.strip()


class _ClientQueries:
    """What a client put in the daemon namespace, waited for with bounds."""

    lab: Lab
    uplink: str

    def leases(self) -> list[str]:
        """The IPv4 addresses (``ADDR/LEN``) of the uplink other than the lab's static one."""
        static = f"{self.lab.local_address(self.uplink)}/24"
        return [a for a in _addresses(self.lab, "daemon", self.uplink, 4) if a != static]

    def slaac_addresses(self) -> list[str]:
        """The uplink's global IPv6 addresses in its 2001:db8:N::/64 but ::2 (the lab's)."""
        prefix = ipv6_prefix(self.lab, self.uplink)
        return [
            a
            for a in _addresses(self.lab, "daemon", self.uplink, 6)
            if ipaddress.IPv6Interface(a).ip in prefix
            and ipaddress.IPv6Interface(a).ip != prefix[2]
        ]

    def default_routes(self, family: int) -> list[ClientRoute]:
        return default_routes(self.lab, family, self.uplink)

    def wait_lease(self, timeout: float = LEASE_TIMEOUT) -> str:
        """The first leased IPv4 address (``ADDR/LEN``) with the ISP's netmask (/24),
        waited for at most ``timeout``. udhcpc's script sets the address with ifconfig,
        which gives it its classful mask first (/8 for 100.64.N.x) and the lease's netmask
        a moment later: that moment is not the lease yet."""

        def settled() -> list[str]:
            return [a for a in self.leases() if a.endswith(f"/{LEASE_PREFIX_LEN}")]

        return self._until(settled, timeout, "an IPv4 lease")[0]

    def wait_slaac_address(self, timeout: float = LEASE_TIMEOUT) -> str:
        return self._until(self.slaac_addresses, timeout, "a SLAAC address")[0]

    def wait_default_route(
        self, family: int = 4, timeout: float = LEASE_TIMEOUT, *, gateway: str | None = None
    ) -> ClientRoute:
        """The uplink's default route of ``family`` (via ``gateway``, if given)."""

        def found() -> list[ClientRoute]:
            return [r for r in self.default_routes(family) if gateway in (None, r.gateway)]

        what = f"an IPv{family} default route on {self.uplink}" + (
            f" via {gateway}" if gateway else ""
        )
        return self._until(found, timeout, what)[0]

    def wait_no_default_route(self, family: int = 4, timeout: float = LEASE_TIMEOUT) -> None:
        self._until(lambda: [True] if not self.default_routes(family) else [], timeout,
                    f"no IPv{family} default route on {self.uplink}")  # fmt: skip

    def wait_no_lease(self, timeout: float = LEASE_TIMEOUT) -> None:
        self._until(lambda: [True] if not self.leases() else [], timeout,
                    f"no IPv4 lease on {self.uplink}")  # fmt: skip

    def _until(self, probe: Callable[[], list[T]], timeout: float, what: str) -> list[T]:
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            self._check_alive(what)
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout} s waiting for {what}:\n{self.log()}")
            time.sleep(POLL_INTERVAL)

    def _check_alive(self, what: str) -> None:
        """Fail a wait early when the client that should act has died."""

    def log(self) -> str:
        raise NotImplementedError


class Client(Program, _ClientQueries):
    """A DHCP/RA client program on a daemon uplink. Its first start takes the uplink
    over (see :class:`_UplinkTakeover`); between that and :meth:`close`, stop, kill and
    restart leave whatever the client leaves; close stops it, clears what it left and puts
    the lab's static addresses (and accept_ra) back."""

    families: ClassVar[tuple[int, ...]] = (4,)

    def __init__(self, lab: Lab, uplink: str) -> None:
        Program.__init__(self, lab, lab.daemon_ns, f"{self.program}-{uplink}")
        self.uplink = uplink
        self._takeover = _UplinkTakeover(lab, uplink, self.families)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self._takeover.take()
        self._before_start()
        super().start(timeout)

    def _before_start(self) -> None:
        pass

    def renew(self) -> None:
        """Ask the client to renew its lease now (what its signal does)."""
        raise NotImplementedError

    def close(self) -> None:
        super().close()
        self._takeover.give_back()

    def _check_alive(self, what: str) -> None:
        if self._proc is not None and not self.running:
            raise LabError(f"{self.label} exited ({self._proc.returncode}) while waiting for "
                           f"{what}:\n{self.log()}")  # fmt: skip


class DhcpcdClient(Client):
    """dhcpcd in per-interface mode on ``uplink``: DHCPv4 and (with ``ipv6``) RA/SLAAC,
    with its real hook scripts (/usr/lib/dhcpcd/dhcpcd-run-hooks), configured as Debian's
    /etc/dhcpcd.conf (``persistent`` included, unless ``persistent=False``) but for IPv4LL,
    which is off (169.254/16 is no documentation range), and with ``timeout 0`` (never give
    up; dhcpcd on one interface otherwise exits after 30 s without a lease). ``metric``:
    dhcpcd's own default is 1000 + the uplink's ifindex. ``kernel_ra_off_first``: set the
    uplink's accept_ra to 0 before dhcpcd starts (it does so itself once running), so that
    an RA already on the link cannot give the kernel a SLAAC address of its own.
    renew(): SIGUSR1 ("renewing")."""

    program = "dhcpcd"
    families = (4, 6)

    def __init__(
        self,
        lab: Lab,
        uplink: str,
        *,
        ipv6: bool = True,
        metric: int | None = None,
        persistent: bool = True,
        kernel_ra_off_first: bool = True,
    ) -> None:
        super().__init__(lab, uplink)
        self.ipv6, self.metric, self.persistent = ipv6, metric, persistent
        self.kernel_ra_off_first = kernel_ra_off_first
        self.config = self.directory / "dhcpcd.conf"
        self.config.write_text(self._config())

    def _config(self) -> str:
        lines = [
            "# The options of Debian's /etc/dhcpcd.conf, for the lab.",
            "duid",
            "vendorclassid",
            "option domain_name_servers, domain_name, domain_search",
            "option classless_static_routes",
            "option interface_mtu",
            "option host_name",
            "option rapid_commit",
            "require dhcp_server_identifier",
            "slaac private",
            "noipv4ll",
            "timeout 0",
        ]
        if self.persistent:
            lines.append("persistent")
        if not self.ipv6:
            lines.append("ipv4only")
        if self.metric is not None:
            lines.append(f"metric {int(self.metric)}")
        return "\n".join(lines) + "\n"

    def _argv(self) -> list[str]:
        return ["dhcpcd", "--nobackground", "--debug", "--config", str(self.config), self.uplink]

    def _before_start(self) -> None:
        if self.ipv6 and self.kernel_ra_off_first:
            # dhcpcd turns the kernel's RA handling off itself, but only once it runs: an
            # RA arriving before would give the uplink a kernel SLAAC address besides.
            self.lab.run(
                "daemon", ["sysctl", "-q", "-w", f"net.ipv6.conf.{self.uplink}.accept_ra=0"]
            )

    def _ready(self) -> bool:
        # Its control socket (IF.sock, or IF-4.sock with ipv4only): dhcpcd is past its
        # start-up and listening.
        run = self.sandbox.path("/run/dhcpcd")
        return any(run.glob(f"{self.uplink}.sock")) or any(run.glob(f"{self.uplink}-[46].sock"))

    def lease_file(self) -> Path:
        """Where dhcpcd keeps the last lease (its /var/lib/dhcpcd/IF.lease)."""
        return self.sandbox.path(f"/var/lib/dhcpcd/{self.uplink}.lease")

    def renew(self) -> None:
        self.send_signal(signal.SIGUSR1)


class UdhcpcClient(Client):
    """busybox udhcpc on ``uplink`` (DHCPv4 only) with Debian's default script, which
    configures the address with ifconfig, the default route with ``ip route`` and rewrites
    /etc/resolv.conf (here the sandbox's copy). In the foreground, never giving up; with
    ``release_on_stop`` (-R) it releases the lease and deconfigures the uplink on SIGTERM,
    as ifupdown's ifdown does. renew(): SIGUSR1."""

    program = "udhcpc"

    def __init__(self, lab: Lab, uplink: str, *, release_on_stop: bool = True) -> None:
        scripts = [s for s in UDHCPC_SCRIPTS if os.path.exists(s)]
        if not scripts:
            raise LabError(f"udhcpc's default script is missing ({' or '.join(UDHCPC_SCRIPTS)})")
        super().__init__(lab, uplink)
        self.release_on_stop = release_on_stop
        self.script = scripts[0]

    def _argv(self) -> list[str]:
        argv = ["udhcpc", "-f", "-i", self.uplink, "-s", self.script]
        return argv + (["-R"] if self.release_on_stop else [])

    def _ready(self) -> bool:
        return "udhcpc: started" in self.log().rsplit("--- start", 1)[-1]

    def renew(self) -> None:
        self.send_signal(signal.SIGUSR1)


class KernelRA(_ClientQueries):
    """The kernel's own RA handling as the IPv6 "client" of ``uplink``: accept_ra=2 (RAs
    accepted even when the namespace forwards; 1 accepts them only without forwarding),
    autoconf=1 (SLAAC). There is no process: stop() puts the old settings back (what the
    kernel learned stays until it expires or an RA withdraws it)."""

    def __init__(self, lab: Lab, uplink: str, *, accept_ra: int = 2) -> None:
        self.lab, self.uplink, self.accept_ra = lab, uplink, accept_ra
        self._takeover = _UplinkTakeover(lab, uplink, (6,))
        self._saved: dict[str, str] = {}
        self._log: list[str] = []
        self.pid = None

    def __enter__(self) -> KernelRA:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _keys(self) -> dict[str, str]:
        conf = f"net.ipv6.conf.{self.uplink}"
        return {f"{conf}.accept_ra": str(self.accept_ra), f"{conf}.autoconf": "1"}

    def start(self) -> None:
        self._takeover.take()
        for key, value in self._keys().items():
            self._saved.setdefault(key, self._sysctl(key))
            self._set(key, value)

    def stop(self) -> None:
        for key, value in self._saved.items():
            self._set(key, value)
        self._saved.clear()

    kill = stop

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._takeover.give_back()

    def log(self) -> str:
        return "\n".join(self._log)

    def _sysctl(self, key: str) -> str:
        return self.lab.run("daemon", ["sysctl", "-n", key]).stdout.strip()

    def _set(self, key: str, value: str) -> None:
        self.lab.run("daemon", ["sysctl", "-q", "-w", f"{key}={value}"])
        self._log.append(f"{key}={value}")
