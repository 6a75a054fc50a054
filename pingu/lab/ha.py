"""Two routers, one gateway address: two labs (each a router namespace running over its own
uplinks, ISPs and internet) joined on their LAN side by a bridge, a client behind them, and
the real keepalived (Debian's) in each router holding the LAN's virtual gateway address by
VRRP.

``with RouterPair() as pair:`` builds, and always removes, all of it::

    lab "a": isp-wan1, isp-wan2, inet            lab "b": isp-wan1, isp-wan2, inet
              \\      /                                     \\      /
           router ns "a" (a-daemon)                     router ns "b" (b-daemon)
           lan0 192.0.2.2/24                            lan0 192.0.2.3/24
                 \\                                          /
                  +----- bridge "lan" in PREFIX-lan -------+
                                    |
                      client ns PREFIX-client: eth0 192.0.2.100/24,
                      default via the virtual address 192.0.2.1

Each router forwards and masquerades what comes from the LAN out of its uplinks (nftables
table ``ip pingu_lab_ha``), so a client's echo reaches the internet of whichever router holds
192.0.2.1 (its responder logs it), never the other one's: which router carried a packet is
a fact the test reads, not a guess. The two internets are separate namespaces with the same
addressing (each lab's plan, :mod:`pingu.lab.lab`).

Every name starts with the pair's prefix; the bridge lives in a namespace of its own, never
in the root one. keepalived runs as :class:`Keepalived`, a sandboxed :class:`Program` (its
pid files, /run and /var/lib private, in the foreground, logging to its output).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from pingu.lab import _process
from pingu.lab.clients import Program, _which
from pingu.lab.errors import LabError
from pingu.lab.lab import Lab

LAN_NET = ipaddress.IPv4Network("192.0.2.0/24")
VIRTUAL_ADDRESS = "192.0.2.1"
ROUTER_ADDRESSES = {"a": "192.0.2.2", "b": "192.0.2.3"}
CLIENT_ADDRESS = "192.0.2.100"
ROUTER_LAN = "lan0"  # each router's LAN interface
CLIENT_IF = "eth0"
BRIDGE = "lan"
NAT_TABLE = "pingu_lab_ha"
DEFAULT_TARGETS = ("203.0.113.10", "203.0.113.20")
_registry = _process.Registry()


class RouterPair:
    """Routers "a" and "b" (two :class:`Lab`, each with ``uplinks``), their LAN bridge and a
    client. Leaving the block stops what the labs run and deletes every namespace made."""

    def __init__(
        self,
        uplinks: Sequence[str] = ("wan1", "wan2"),
        targets: Sequence[str] = DEFAULT_TARGETS,
        *,
        prefix: str | None = None,
    ) -> None:
        self.prefix = prefix or f"pgh-{secrets.token_hex(3)}"
        self._uplinks = tuple(uplinks)
        self._targets = tuple(targets)
        self.bridge_ns = f"{self.prefix}-lan"
        self.client_ns = f"{self.prefix}-client"
        self.labs: dict[str, Lab] = {}
        self._stack = contextlib.ExitStack()
        self._namespaces: list[str] = []
        self._workdir: str | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RouterPair:
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
        self.close()

    def close(self) -> None:
        """Close both labs, delete the bridge's and the client's namespaces (idempotent)."""
        if self._closed:
            return
        self._closed = True
        problems: list[str] = []
        with _process.SignalsDeferred():
            try:
                self._stack.close()
            except LabError as error:
                problems.append(str(error))
            for ns in reversed(self._namespaces):
                problems += _delete_namespace(ns)
            self._namespaces.clear()
            if self._workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
            _registry.remove(id(self))
        if problems:
            what = "; ".join(problems)
            raise LabError(f"router pair {self.prefix}: teardown incomplete: {what}")

    def _build(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        for name in ROUTER_ADDRESSES:
            lab = Lab(self._uplinks, self._targets, prefix=f"{self.prefix}-{name}")
            self.labs[name] = self._stack.enter_context(lab)
        for ns in (self.bridge_ns, self.client_ns):
            with _process.netns_lock():
                _process.run(["ip", "netns", "add", ns])
            self._namespaces.append(ns)
            self._ip(ns, "link set lo up")
        self._ip(self.bridge_ns, f"link add {BRIDGE} type bridge mcast_snooping 0")
        self._ip(self.bridge_ns, f"link set {BRIDGE} up")
        plen = LAN_NET.prefixlen
        for name, address in ROUTER_ADDRESSES.items():
            router = self.router_ns(name)
            self._attach(router, ROUTER_LAN, f"to-{name}")
            self._ip(router, f"addr add {address}/{plen} dev {ROUTER_LAN}")
            self._ip(router, f"link set {ROUTER_LAN} up")
            self._sysctl(router, "net.ipv4.ip_forward=1")
            self._nft(router, self.nat_ruleset())
        self._attach(self.client_ns, CLIENT_IF, "to-client")
        self._ip(self.client_ns, f"addr add {CLIENT_ADDRESS}/{plen} dev {CLIENT_IF}")
        self._ip(self.client_ns, f"link set {CLIENT_IF} up")
        self._ip(self.client_ns, f"route add default via {VIRTUAL_ADDRESS} dev {CLIENT_IF}")

    def _attach(self, ns: str, name: str, port: str) -> None:
        """A veth from ``ns`` (named ``name`` there) to the bridge (port ``port``)."""
        self._ip(self.bridge_ns, f"link add {port} type veth peer name {name} netns {ns}")
        self._ip(self.bridge_ns, f"link set {port} master {BRIDGE} up")

    def nat_ruleset(self) -> str:
        """A router's NAT: what comes from the LAN leaves each uplink masqueraded."""
        rules = "".join(
            f'    ip saddr {LAN_NET} oifname "{uplink}" masquerade\n' for uplink in self._uplinks
        )
        return (
            f"table ip {NAT_TABLE} {{\n  chain postrouting {{\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f"{rules}  }}\n}}\n"
        )

    # ------------------------------------------------------------------ looking at it

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the pair that exists now (the labs' included)."""
        own = tuple(ns for lab in self.labs.values() for ns in lab.namespaces)
        return own + tuple(self._namespaces)

    def router_ns(self, name: str) -> str:
        """Router ``name``'s namespace ("a" or "b"): its lab's daemon namespace."""
        return self.labs[name].daemon_ns

    def holds_virtual_address(self, name: str) -> bool:
        """Whether router ``name`` has the virtual gateway address on its LAN interface."""
        text = self._ip(self.router_ns(name), f"-j -4 addr show dev {ROUTER_LAN}")
        return any(
            info.get("local") == VIRTUAL_ADDRESS
            for link in json.loads(text or "[]")
            for info in link.get("addr_info", ())
        )

    def holders(self) -> list[str]:
        """The routers that hold the virtual address now (one, when VRRP works)."""
        return [name for name in ROUTER_ADDRESSES if self.holds_virtual_address(name)]

    def client_echoes(
        self, target: str, *, count: int, interval: float = 0.05
    ) -> subprocess.Popen[str]:
        """Start echoing ``target`` from the client, ``count`` echoes ``interval`` s apart
        (the lab's echo client; JSON result on its stdout). Stop it with ``terminate``."""
        argv = [sys.executable, "-m", "pingu.lab.ping", "--netns", self.client_ns]
        argv += ["--count", str(count), "--interval", str(interval), "--timeout", "0.5", target]
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_process.helper_env(),
        )

    # ------------------------------------------------------------------ plumbing

    def _ip(self, ns: str, command: str) -> str:
        return _process.run(["ip", "-n", ns, *command.split()]).stdout

    def _sysctl(self, ns: str, *settings: str) -> None:
        _process.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])

    def _nft(self, ns: str, ruleset: str) -> None:
        assert self._workdir is not None
        path = os.path.join(self._workdir, f"{ns}.nft")
        Path(path).write_text(ruleset)
        _process.run(["ip", "netns", "exec", ns, "nft", "-f", path])


def _delete_namespace(ns: str) -> list[str]:
    """Kill what runs in ``ns`` (it would keep it alive, unlisted), then delete it."""
    for pid in _process.run(["ip", "netns", "pids", ns], check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    with _process.netns_lock():
        done = _process.run(["ip", "netns", "del", ns], check=False)
    if done.returncode != 0 and os.path.exists(f"/run/netns/{ns}"):
        return [f"ip netns del {ns}: {done.stderr.strip()}"]
    return []


# ---------------------------------------------------------------------- keepalived


def keepalived_config(
    *,
    router_id: str,
    check_script: str,
    priority: int,
    preempt: bool = True,
    interval: float = 1,
    fall: int = 1,
    rise: int = 2,
    advert_int: float = 1,
    weight: int | None = None,
) -> str:
    """keepalived.conf for one router of the pair: VRRP instance ``LAN`` on ``lan0``
    holding 192.0.2.1/24 at ``priority``, tracking ``check_script`` (pingu's `status
    --check`): its failure puts the instance in FAULT, which gives the address up at once,
    or, with a (negative) ``weight``, only lowers the priority by that much. Both routers
    start as BACKUP (``nopreempt`` needs it); without ``preempt`` a router whose uplinks
    come back stays backup."""
    nopreempt = "" if preempt else "    nopreempt\n"
    weighted = "" if weight is None else f"    weight {int(weight)}\n"
    return f"""global_defs {{
    router_id {router_id}
    enable_script_security
    script_user root
}}

vrrp_script pingu_uplinks {{
    script "{check_script}"
    interval {interval}
    timeout 3
    fall {fall}
    rise {rise}
{weighted}}}

vrrp_instance LAN {{
    state BACKUP
    interface {ROUTER_LAN}
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int}
{nopreempt}    virtual_ipaddress {{
        {VIRTUAL_ADDRESS}/{LAN_NET.prefixlen} dev {ROUTER_LAN}
    }}
    track_script {{
        pingu_uplinks
    }}
}}
"""


def write_check_script(path: Path, control_socket: str) -> str:
    """The track script of one router: this pingu's `status --check` on ``control_socket``,
    root's own and mode 0700 in a directory only root may write, as keepalived's
    ``enable_script_security`` demands (it refuses a script anyone else could change)."""
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={_process.helper_env()['PYTHONPATH']}\nexport PYTHONPATH\n"
        f"exec {sys.executable} -m pingu status --check --timeout 2 --socket {control_socket}\n"
    )
    path.chmod(0o700)
    return str(path)


def keepalived_path() -> str:
    """Where keepalived is: on PATH, in the sbin directories, or in the project's cache,
    where scripts/test-all unpacks Debian's package without installing it."""
    found = _which(Keepalived.program)
    if found is None:
        raise LabError("keepalived is not installed (scripts/test-all unpacks it)")
    return found


class Keepalived(Program):
    """Debian's keepalived (VRRP only) in router ``ns``: in the foreground, logging to its
    output in detail, its pid files in its own directory."""

    program = "keepalived"

    def __init__(self, lab: Lab, ns: str, label: str, config: str) -> None:
        super().__init__(lab, ns, label)
        self.config = self.directory / "keepalived.conf"
        self.config.write_text(config)
        self.pid_file = self.directory / "keepalived.pid"
        self.vrrp_pid_file = self.directory / "vrrp.pid"

    def _argv(self) -> list[str]:
        return [keepalived_path(), "--vrrp", "--dont-fork", "--log-console", "--log-detail",
                "--no-syslog", "--use-file", str(self.config), "--pid", str(self.pid_file),
                "--vrrp_pid", str(self.vrrp_pid_file)]  # fmt: skip

    def start(self, timeout: float = 30.0) -> None:
        self.pid_file.unlink(missing_ok=True)
        self.vrrp_pid_file.unlink(missing_ok=True)
        super().start(timeout)

    def _ready(self) -> bool:
        # The VRRP child writes its pid file once its instances are set up.
        return self.vrrp_pid_file.exists() and "Entering" in self.log()
