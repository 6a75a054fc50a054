"""`pingu demo`: the real daemon in a throw-away lab of network namespaces, managing its
uplinks in IPv4 and IPv6, shown live while the primary uplink is cut, restored, cut in IPv6
only, and every uplink is cut; the lab is then removed."""

from __future__ import annotations

import json
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from pingu.lab import Lab, LabError, Route, Uplink
from pingu.lab.lab import IPVersion

PROTO = 136  # pingu's own routes (the default proto)
PROTO_NAMES = {2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp"}
OWNERS = {16: "DHCP client", 3: "PPP client", 9: "kernel (RA)", PROTO: "pingu"}
TARGET = "203.0.113.10"
TARGET6 = "2001:db8:ffff::10"
UPLINKS = (Uplink("wan1"), Uplink("wan2"), Uplink("ppp0", "p2p"))
METRICS = {"wan1": 100, "wan2": 200, "ppp0": 300}
# The routes the simulated clients install before pingu runs: (metric, proto) per uplink.
# pppd adds its route with an ioctl, which the kernel files under proto boot.
LEASES = {"wan1": (1024, "dhcp"), "wan2": (1025, "dhcp"), "ppp0": (1026, "boot")}
# And the IPv6 routes the kernel installs for each ISP's router advertisement (proto ra),
# each uplink with a metric of its own (`ip` refuses two of one metric on two links): via
# the router's link-local address, or none on the point-to-point uplink.
ROUTER_ADVERTS = {"wan1": 1024, "wan2": 1025, "ppp0": 1026}
PROTO_NUMBERS = {"dhcp": 16, "boot": 3, "ra": 9}
FAMILIES: tuple[IPVersion, ...] = (4, 6)
# A fast profile: a round of 5 echoes 100 ms apart, each waited for 500 ms, fits in the
# 1 s period; 3 lost echoes fail it (early verdict), 3 replies pass it.
PERIOD_S = 1
FAST = {"count": 5, "max_lost": 2, "interval": 100, "timeout": 500}
START_TIMEOUT = 45.0  # the daemon's start-up (imports are slow on a busy machine)
STEP_TIMEOUT = 25.0  # each expected outcome; the fast profile needs about 2 s
STOP_TIMEOUT = 15.0
NAMESPACE_PREFIX = "pgdemo"
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
_ROUND_FAILED = re.compile(r"^INFO (\S+): round failed: (.*)$")
_BACK_UP = re.compile(r"^WARNING (\S+) \S+ -> up: ")

Own = dict[str, tuple[str | None, int]]  # uplink -> (gateway, metric) of pingu's routes
Table = dict[IPVersion, list[Route]]  # the default routes of table main, per family


class DemoFailed(Exception):
    """A step did not reach its expected outcome in time; the demo stops there."""


@dataclass(frozen=True)
class Step:
    """One act of the demo: what is done, why, and the table it must lead to."""

    title: str
    narration: str
    action: Callable[[Lab], None]
    expected: str
    outcome: Callable[[Table], bool]
    timeout: float = STEP_TIMEOUT
    daemon_exits: bool = False  # the step stops the daemon on purpose


class DaemonOutput:
    """The daemon's output, read on a thread; each line stamped with when it arrived."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[tuple[float, str]] = queue.Queue()
        thread = threading.Thread(target=self._read, args=(stream,), name="daemon-log")
        thread.daemon = True
        thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put((time.monotonic(), line.rstrip("\n")))

    def next(self, wait: float) -> tuple[float, str] | None:
        """The next line, waiting at most ``wait`` seconds for it."""
        try:
            return self._lines.get(timeout=max(0.0, wait))
        except queue.Empty:
            return None


class Demo:
    """The script, played on a lab that is up; everything it shows goes to ``out``."""

    def __init__(self, out: TextIO, step_pause: float, workdir: Path) -> None:
        self.out = out
        self.step_pause = step_pause
        self.workdir = workdir
        self.daemon: subprocess.Popen[str] | None = None
        self.output: DaemonOutput | None = None
        self.step_started = time.monotonic()
        self.timings: dict[str, float] = {}
        # A failing uplink fails every round the same way: each such line shows once.
        self._last_failure: dict[str, str] = {}
        self._repeats: Counter[str] = Counter()

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # ------------------------------------------------------------------ the script

    def steps(self, lab: Lab) -> list[Step]:
        everything4: Own = {
            "wan1": (lab.gateway("wan1"), METRICS["wan1"]),
            "wan2": (lab.gateway("wan2"), METRICS["wan2"]),
            "ppp0": (None, METRICS["ppp0"]),
        }
        everything6: Own = {
            "wan1": (lab.gateway6("wan1"), METRICS["wan1"]),
            "wan2": (lab.gateway6("wan2"), METRICS["wan2"]),
            "ppp0": (None, METRICS["ppp0"]),
        }
        backups4 = {k: v for k, v in everything4.items() if k != "wan1"}
        backups6 = {k: v for k, v in everything6.items() if k != "wan1"}
        return [
            Step(
                "pingu starts",
                "pingu captures the client routes of both families, learns their gateways,\n"
                "and puts its own route in place of each at once (no blackout while it\n"
                "learns), with the metrics of its configuration: wan1 100, wan2 200, ppp0\n"
                f"300. Then it probes {TARGET} and {TARGET6} through each\n"
                f"uplink's own gateway, every {PERIOD_S} s; each family is judged on its own.",
                self.start_daemon,
                "pingu's routes for wan1, wan2 and ppp0 in IPv4 and IPv6; the client routes gone",
                lambda table: owned_only(table, everything4, everything6),
                START_TIMEOUT,
            ),
            Step(
                "cut the primary",
                "wan1's ISP loses its way to the internet; the link itself stays up, so only\n"
                "probing can tell. pingu's next rounds through wan1 fail: wan1 goes down in\n"
                "both families and its routes are removed. Traffic falls back to wan2.",
                lambda lab: lab.cut_upstream("wan1"),
                "failover: wan1's routes removed; wan2 and ppp0 kept",
                lambda table: owned_only(table, backups4, backups6),
            ),
            Step(
                "restore the primary",
                "wan1's ISP is back. pingu kept probing through wan1's gateways meanwhile: the\n"
                "next rounds pass, wan1's routes come back, and traffic with them.",
                lambda lab: lab.restore_upstream("wan1"),
                "failback: wan1's routes back",
                lambda table: owned_only(table, everything4, everything6),
            ),
            Step(
                "cut the primary's IPv6 only",
                "wan1's ISP loses IPv6 upstream while its IPv4 works, a common fault. pingu's\n"
                "IPv6 rounds through wan1 fail, its IPv4 rounds pass: only wan1's IPv6 route\n"
                "goes, and IPv6 traffic falls back to wan2 while IPv4 stays on wan1. (The\n"
                "line works: a reset script would not run while IPv4 carries traffic.)",
                lambda lab: lab.cut_upstream("wan1", 6),
                "IPv6 failover: wan1's IPv6 route removed; its IPv4 route kept",
                lambda table: owned_only(table, everything4, backups6),
            ),
            Step(
                "cut everything",
                "Both ISPs lose their upstream, and the modem behind ppp0 loses its line\n"
                "(carrier down: pingu acts at once, in both families, without waiting for a\n"
                'round). With "when_all_down": "none", the default and py-pingu\'s\n'
                "behaviour, every failed uplink loses its route: the box has no default route\n"
                'until one recovers. ("when_all_down": "keep_best" keeps the route of the\n'
                "uplink with the best last result instead, so that an unreachable probe\n"
                "target cannot cut the box off.)",
                cut_everything,
                "no default route at all, in either family",
                lambda table: not table[4] and not table[6],
            ),
            Step(
                "stop pingu",
                'SIGTERM: pingu stops, and (with "on_exit": "restore", the default) puts the\n'
                "captured client routes back as they were (the RA routes with the lifetime\n"
                "they have left), as if it had never run. The ISPs are still cut, so those\n"
                "routes now lead nowhere: that is what pingu is for.",
                self.stop_daemon,
                "the client routes back, pingu's gone, the daemon exited with status 0",
                self.restored,
                STOP_TIMEOUT,
                daemon_exits=True,
            ),
        ]

    def run(self, lab: Lab) -> None:
        self.header(
            "the lab",
            f"Network namespaces {lab.prefix}-*: this box ({lab.daemon_ns}) with two\n"
            "Ethernet uplinks, wan1 and wan2, and a point-to-point uplink, ppp0 (like PPP or\n"
            "an LTE modem); an ISP namespace behind each, routing IPv4 and IPv6; an\n"
            f"'internet' namespace with the probe targets {TARGET} and\n"
            f"{TARGET6}. Your own network is not touched. The clients put their\n"
            "default routes in, as dhclient and pppd would, and the kernel its routes for\n"
            "each ISP's router advertisement (via the router's link-local address fe80::1;\n"
            "none on ppp0):",
        )
        for uplink, (metric, proto) in LEASES.items():
            lab.dhcp_add(uplink, metric=metric, proto=proto)
        for uplink, metric in ROUTER_ADVERTS.items():
            lab.ra_add(uplink, metric=metric)
        self.show(lab)
        steps = self.steps(lab)
        for number, step in enumerate(steps, start=1):
            self.pause()
            self.header(f"{number}/{len(steps)} {step.title}", step.narration)
            self.step_started = time.monotonic()
            step.action(lab)
            self.timings[step.title] = self.await_outcome(lab, step)
            self.show(lab)
        self.summary()

    # ------------------------------------------------------------------ the daemon

    def start_daemon(self, lab: Lab) -> None:
        config: dict[str, Any] = {
            "host": [TARGET, TARGET6],
            "period": PERIOD_S,
            "proto": PROTO,
            "when_all_down": "none",
            "state_file": str(self.workdir / "state.json"),
            "control_socket": str(self.workdir / "control.sock"),
            "interfaces": {name: {"metric": metric, **FAST} for name, metric in METRICS.items()},
        }
        path = self.workdir / "config.json"
        path.write_text(json.dumps(config, indent=2))
        self.say(f"  $ pingu run --config {path}   # in {lab.daemon_ns}")
        for line in config_lines(config):
            self.say(f"    {line}")
        self.daemon = lab.popen_in_daemon(
            [*daemon_command(), "run", "--config", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert self.daemon.stdout is not None
        self.output = DaemonOutput(self.daemon.stdout)

    def stop_daemon(self, lab: Lab) -> None:
        assert self.daemon is not None
        self.say(f"  $ kill -TERM {self.daemon.pid}")
        self.daemon.send_signal(signal.SIGTERM)

    def restored(self, table: Table) -> bool:
        assert self.daemon is not None
        if self.daemon.poll() is None:
            return False
        if self.daemon.returncode != 0:
            raise DemoFailed(f"the daemon exited with status {self.daemon.returncode}")
        seen = {(r.family, r.oif, r.metric, r.proto) for r in table[4] + table[6]}
        leases = {(4, u, m, PROTO_NUMBERS[p]) for u, (m, p) in LEASES.items()}
        adverts = {(6, u, m, PROTO_NUMBERS["ra"]) for u, m in ROUTER_ADVERTS.items()}
        return seen == leases | adverts

    # ------------------------------------------------------------------ watching

    def await_outcome(self, lab: Lab, step: Step) -> float:
        """Stream the daemon's lines until the step's outcome shows in the routing table;
        returns how long that took."""
        deadline = self.step_started + step.timeout
        while not step.outcome(default_routes(lab)):
            if not step.daemon_exits and self.daemon and self.daemon.poll() is not None:
                self.drain(0.5)
                raise DemoFailed(f"the daemon exited with status {self.daemon.returncode}")
            if time.monotonic() > deadline:
                self.drain(0.2)
                self.say(f"  [FAILED] not within {step.timeout:.0f} s: {step.expected}")
                self.show(lab)
                raise DemoFailed(f"{step.title}: {step.expected}: did not happen")
            self.drain(0.05)
        took = time.monotonic() - self.step_started
        self.drain(0.3)  # the log line of a change comes just after the change itself
        self.say(f"  [ok] {step.expected} (after {took:.1f} s)")
        return took

    def pause(self) -> None:
        """Time to read; the daemon's lines meanwhile still show."""
        self.drain(self.step_pause)
        self.flush_repeats()

    def drain(self, wait: float) -> None:
        """Show the daemon's lines that arrive within ``wait`` seconds."""
        if self.output is None:
            time.sleep(wait)
            return
        deadline = time.monotonic() + wait
        while (item := self.output.next(deadline - time.monotonic())) is not None:
            stamp, line = item
            line = _LOG_TIMESTAMP.sub("", line)
            if not self.repeated(line):
                self.say(f"  pingu | +{max(0.0, stamp - self.step_started):4.1f}s {line}")

    def repeated(self, line: str) -> bool:
        """Whether ``line`` repeats an uplink's last failed round (counted, not shown)."""
        if back := _BACK_UP.match(line):
            self._last_failure.pop(back[1], None)
        failed = _ROUND_FAILED.match(line)
        if failed is None:
            return False
        uplink, reason = failed[1], failed[2]
        if self._last_failure.get(uplink) == reason:
            self._repeats[uplink] += 1
            return True
        self._last_failure[uplink] = reason
        return False

    def flush_repeats(self) -> None:
        for uplink, times in sorted(self._repeats.items()):
            self.say(f"  pingu | ({uplink}: {times} more round(s) failed the same way)")
        self._repeats.clear()

    # ------------------------------------------------------------------ output

    def header(self, title: str, narration: str) -> None:
        self.say()
        self.say(f"== {title} ".ljust(78, "="))
        for line in narration.splitlines():
            self.say(f"  {line}")

    def show(self, lab: Lab) -> None:
        self.flush_repeats()
        table = default_routes(lab)
        for family in FAMILIES:
            self.say(f"  IPv{family} default routes in {lab.daemon_ns}, table main:")
            for line in route_table(table[family]):
                self.say(f"    {line}")
        for target in (TARGET, TARGET6):
            self.say(f"  traffic to {target}: {traffic(lab, target)}")

    def summary(self) -> None:
        self.say()
        self.say(
            f"Measured with period {PERIOD_S} s, count {FAST['count']}, max_lost "
            f"{FAST['max_lost']}, interval {FAST['interval']} ms, timeout {FAST['timeout']} ms:"
        )
        timings = self.timings
        self.say(f"  failover (cut to routes removed): {timings['cut the primary']:.1f} s")
        self.say(f"  failback (restore to routes back): {timings['restore the primary']:.1f} s")
        ipv6 = timings["cut the primary's IPv6 only"]
        self.say(f"  IPv6 failover (IPv6 cut to its route removed): {ipv6:.1f} s")


def cut_everything(lab: Lab) -> None:
    lab.cut_upstream("wan1")
    lab.cut_upstream("wan2")
    lab.carrier_down("ppp0")


def default_routes(lab: Lab) -> Table:
    """The default routes of table main in the daemon namespace, of both families."""
    return {family: lab.default_routes(family=family) for family in FAMILIES}


def owned_only(table: Table, expected4: Own, expected6: Own) -> bool:
    """The default routes are exactly pingu's ``expected`` ones, in each family."""
    wanted: tuple[tuple[IPVersion, Own], ...] = ((4, expected4), (6, expected6))
    for family, expected in wanted:
        routes = table[family]
        own = {str(r.oif): (r.gateway, r.metric) for r in routes if r.proto == PROTO}
        if own != expected or len(routes) != len(expected):
            return False
    return True


def config_lines(config: dict[str, Any]) -> list[str]:
    """The configuration as JSON, a line per top-level key and per uplink."""
    items = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in config.items() if k != "interfaces"]
    uplinks = [f"    {json.dumps(k)}: {json.dumps(v)}," for k, v in config["interfaces"].items()]
    uplinks[-1] = uplinks[-1].removesuffix(",")
    return ["{", *items, '  "interfaces": {', *uplinks, "  }", "}"]


def route_table(routes: Sequence[Route]) -> list[str]:
    """The default routes as a small table, the one the kernel uses (lowest metric) first."""
    if not routes:
        return ["(no default route: this box cannot reach the internet)"]
    lifetimes = any(route.expires is not None for route in routes)
    rows = [("uplink", "gateway", "metric", "proto", "owner", *(["expires"] * lifetimes), "")]
    for index, route in enumerate(sorted(routes, key=lambda r: r.metric)):
        expires = "-" if route.expires is None else f"{route.expires} s"
        rows.append(
            (
                str(route.oif),
                route.gateway or "- (p2p)",
                str(route.metric),
                PROTO_NAMES.get(route.proto, str(route.proto)),
                OWNERS.get(route.proto, "?"),
                *([expires] * lifetimes),
                "<- in use" if index == 0 else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def traffic(lab: Lab, target: str) -> str:
    """Which uplink the kernel picks for ``target``, and whether echoes come back."""
    found = lab.run("daemon", ["ip", "-j", "route", "get", target], check=False)
    if found.returncode != 0:
        return "no route (" + (found.stderr.strip() or "unreachable") + ")"
    (route,) = json.loads(found.stdout)
    result = lab.ping(None, target, count=3, interval=0.1, timeout=0.5)
    return f"leaves via {route.get('dev')}; ping: {result.received}/{result.sent} replies"


def daemon_command() -> list[str]:
    """How to start this pingu: the single-file bundle is its own interpreter."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "pingu"]


def lab_namespaces(prefix: str) -> list[str]:
    """The namespaces of the lab ``prefix`` that exist right now."""
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=10
    ).stdout
    names = (line.split()[0] for line in listed.splitlines() if line.strip())
    return [name for name in names if name.startswith(prefix + "-")]


def run_demo(out: TextIO, step_pause: float = 3.0) -> int:
    """`pingu demo` (as root): 0 when every step behaved, 1 when one did not, 128+N when
    stopped by signal N; the lab is removed in every case."""
    prefix = f"{NAMESPACE_PREFIX}-{secrets.token_hex(3)}"
    out.write(f"pingu demo: building lab {prefix} (network namespaces; under a minute)\n")
    out.flush()
    status = 0
    with tempfile.TemporaryDirectory(prefix="pingu-demo-") as workdir:
        demo = Demo(out, step_pause, Path(workdir))
        try:
            with Lab(UPLINKS, targets=[TARGET, TARGET6], prefix=prefix) as lab:
                demo.run(lab)
        except DemoFailed as failure:
            demo.say(f"\npingu demo FAILED: {failure}")
            status = 1
        except LabError as error:
            demo.say(f"\npingu demo FAILED: the lab: {error}")
            status = 1
        except KeyboardInterrupt:
            demo.say("\ninterrupted")
            status = 128 + signal.SIGINT
        except SystemExit as stop:  # the lab turns SIGTERM into SystemExit(128 + 15)
            demo.say("\nterminated")
            status = stop.code if isinstance(stop.code, int) else 1
    left = lab_namespaces(prefix)
    if left:
        out.write(f"lab {prefix}: namespaces left behind: {' '.join(left)}\n")
        out.flush()
        return 1
    out.write(f"lab {prefix} removed: no namespace {prefix}-* left; your network untouched.\n")
    if status == 0:
        out.write("pingu demo: every step behaved.\n")
    out.flush()
    return status
