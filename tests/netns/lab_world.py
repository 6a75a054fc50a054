"""The lab's side of the Gherkin features: the operator's words of ``features/*.feature``
carried out on a real kernel by the real daemon (``pingu run -v``) in a lab.

How the words map onto the lab (the features were written for the core and a fake clock):

- Addresses and scripts in a feature are names. The gateway a feature gives an uplink's
  lease (``192.0.2.1``) is played by the lab's ISP gateway on that uplink (``100.64.1.1``);
  a reset script path (``/usr/local/sbin/reset-wan``) by a script in the test's directory
  that records its runs. Route texts are translated so before they are compared.
- Time is the lab's own. Feature periods run ``LAB_TIME_SCALE`` times as fast (5 s ->
  1.5 s); echoes go 100 ms apart and are waited for 300 ms (settings the features leave to
  the defaults of the fake). "N seconds pass" lets the daemon run on: the next round step
  waits for the round that time brings.
- "The round on X passes/fails": the ISP of X gets its upstream back/cut, and the next
  round the daemon judges on X is that round; it must have that outcome. The daemon probes
  every period whatever the scenario says, so other rounds may come in between, but only
  if they changed nothing (no health change, no route, no script); otherwise the step fails.
  A change of condition is made just after a verdict on X, so that no round is in flight.
- What pingu does in a step (the verdict, "goes from A to B", installs, removes) is read
  from the daemon's log lines for the event that step caused: a batch, from its ``event``
  line (logged with -v) to the next one. A step knows the daemon is done with its event
  by a fence: a default route on ``lo`` in table 199, which pingu ignores (it never
  touches other tables), added and deleted; its event is handled after all those before.
  What the table holds is read from the kernel,
  and only counts if the daemon has changed nothing since that step; if it has (a slow
  machine let the next round in first), the step fails as inconclusive instead of guessing.
- A round the fake fails whole ("5/5 lost, no reply") is decided early by the real prober:
  it stops at the echo that makes the failure certain and reports the echoes still in
  flight apart ("3/3 lost (+2 not waited for), no reply (early verdict)"); how many were
  in flight depends on the machine's timing. Both mean the same: every echo waited for was
  lost (:func:`same_outcome`).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pingu.lab import Lab, Route
from tests.netns.conftest import LabFactory
from tests.netns.daemon import JUDGED, PROTO, STATE, WAIT_S, Daemons, RunningDaemon, write_script

T = TypeVar("T")

LAB_TIME_SCALE = 0.3
ECHO_TIMING = {"interval": 100, "timeout": 300}
FEATURE_TARGET = "203.0.113.10"  # the fake's probe target: the lab's first target too
DHCP_METRIC = 1024
FENCE_TABLE = 199
MAX_IDLE_ROUNDS = 3  # rounds that changed nothing, allowed before the one a step waits for
PROTOCOLS = {"pingu": PROTO, "kernel": 2, "boot": 3, "static": 4, "ra": 9, "dhcp": 16}
TABLES = {"main": 254, "default": 253, "local": 255}
SECONDS_COLUMNS = ("period", "reset_script_grace_period")
COLUMNS = ("uplink", "metric", "fall", "rise", "reset_script", *SECONDS_COLUMNS)

# What starts a batch of the daemon's log: an event it handles, or a check of the whole
# table (whose repairs are logged after it, like an event's effects).
EVENT = re.compile(
    r" DEBUG (?:event (?P<kind>\w+)\((?P<args>.*)\)|(?P<check>table check) \((?P<why>.*)\): .*)$"
)
CHANGE = re.compile(r" (installed|removed|restored) default | deleted captured | captured default ")
STARTED = re.compile(r" (?P<uplink>[\w.-]+): started \w+ script ")
ECHO_LINE = re.compile(r" (?P<uplink>[\w.-]+): echo \d+ to \S+ via (?P<gateway>\S+): ")
HEALTH = re.compile(r"(?P<health>up|failing|down|rising), gateway ")


_NO_REPLY = re.compile(
    r"(?P<target>\S+): (?P<lost>\d+)/(?P<waited>\d+) lost"
    r"(?: \(\+\d+ not waited for\))?, no reply"
)


def same_outcome(feature: str, real: str) -> bool:
    """Whether the real daemon's reason says what the feature's does (see the module)."""
    if feature in real:
        return True
    said, seen = _NO_REPLY.search(feature), _NO_REPLY.search(real)
    return (
        said is not None
        and seen is not None
        and said["target"] == seen["target"]
        and said["lost"] == said["waited"]
        and seen["lost"] == seen["waited"]
        and int(seen["lost"]) > 0
    )


class Inconclusive(AssertionError):
    """The lab could not observe what the step asks about (the daemon moved on first)."""


@dataclass(frozen=True)
class Batch:
    """One event the daemon handled, and the log lines of what it did about it."""

    start: int  # index of its `event` line in the log
    end: int  # index of the next `event` line
    kind: str
    args: str
    lines: tuple[str, ...]

    def verdict(self, uplink: str) -> tuple[str, str] | None:
        """("passed" or "failed", reason) when this event was a round judged on ``uplink``."""
        for line in self.lines:
            if (judged := JUDGED.search(line)) and judged["uplink"] == uplink:
                return judged["outcome"], judged["reason"]
        return None

    def states(self, uplink: str) -> list[tuple[str, str]]:
        return [
            (m["old"], m["new"])
            for line in self.lines
            if (m := STATE.search(line)) and m["uplink"] == uplink
        ]

    def changes(self) -> list[str]:
        """Lines that tell of a route installed, removed, restored, captured or deleted."""
        return [line for line in self.lines if CHANGE.search(line)]

    def effects(self, uplink: str) -> list[str]:
        """Everything this event changed: health of ``uplink``, routes, scripts started."""
        return [
            line
            for line in self.lines
            if CHANGE.search(line)
            or ((m := STATE.search(line)) and m["uplink"] == uplink)
            or ((s := STARTED.search(line)) and s["uplink"] == uplink)
        ]


def event_starts(lines: list[str], after: int) -> list[int]:
    """The indices of the `event` lines at or after line ``after``."""
    return [i for i in range(after, len(lines)) if EVENT.search(lines[i])]


def batch_at(lines: list[str], start: int) -> Batch:
    """The batch of the event at line ``start``, up to the next event line (or the end)."""
    event = EVENT.search(lines[start])
    assert event is not None, lines[start]
    end = next((i for i in range(start + 1, len(lines)) if EVENT.search(lines[i])), len(lines))
    kind, args = ("TableCheck", event["why"]) if event["check"] else (event["kind"], event["args"])
    return Batch(start, end, kind, args, tuple(lines[start:end]))


@dataclass(frozen=True)
class FeatureRoute:
    """A default route in a feature's words, translated into the lab's."""

    gateway: str | None
    dev: str
    proto: int
    metric: int
    table: int = 254

    def describe(self) -> str:
        """As the daemon logs it (`installed default via ... metric 100`)."""
        via = f"via {self.gateway} " if self.gateway else ""
        return f"default {via}dev {self.dev} proto {self.proto} metric {self.metric}"

    def matches(self, route: Route) -> bool:
        return (route.gateway, route.oif, route.proto, route.metric, route.table) == (
            self.gateway,
            self.dev,
            self.proto,
            self.metric,
            self.table,
        )


def _named(value: str, names: dict[str, int]) -> int:
    return names[value] if value in names else int(value)


def _poll(find: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    while (found := find()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.02)
    return found


@dataclass
class LabWorld:
    """One scenario on the lab: the lab, the daemon, and where the scenario stands in its log."""

    lab_factory: LabFactory
    daemons: Daemons
    workdir: Path
    lab: Lab | None = None
    daemon: RunningDaemon | None = None
    gateways: dict[str, str] = field(default_factory=dict)  # feature address -> lab address
    records: dict[str, Path] = field(default_factory=dict)  # uplink -> its script's runs
    script_names: dict[str, str] = field(default_factory=dict)  # uplink -> the stand-in's name
    cut: set[str] = field(default_factory=set)  # uplinks whose upstream is cut
    cursor: int = 0  # log lines before this were accounted for by earlier steps
    batch: Batch | None = None  # what the last step made the daemon do
    subject: str | None = None  # the uplink the last step acted on
    since: float = 0.0  # time.monotonic() when the last step acted
    just_judged: str | None = None  # uplink whose round was judged last, none in flight
    pending_gateway: dict[str, str] = field(default_factory=dict)
    fences: int = 0

    # -- the pieces, once they exist ------------------------------------------------------

    @property
    def pingu(self) -> RunningDaemon:
        assert self.daemon is not None, "no 'pingu runs with the uplinks' step yet"
        return self.daemon

    @property
    def net(self) -> Lab:
        assert self.lab is not None, "no 'pingu runs with the uplinks' step yet"
        return self.lab

    def step_batch(self) -> Batch:
        assert self.batch is not None, "no step has made the daemon do anything yet"
        return self.batch

    # -- given: the configuration ---------------------------------------------------------

    def start(self, datatable: list[list[str]]) -> None:
        """Build a lab with the table's uplinks and start pingu on them."""
        header, *rows = datatable
        unknown = set(header) - set(COLUMNS)
        assert not unknown, f"the lab binding knows the columns {COLUMNS}, not {unknown}"
        uplinks = [dict(zip(header, row, strict=True)) for row in rows]
        self.lab = self.lab_factory([u["uplink"] for u in uplinks], targets=[FEATURE_TARGET])
        interfaces = {u["uplink"]: self._uplink_settings(u) for u in uplinks}
        config = {
            "host": FEATURE_TARGET,
            "initial_state": "up",
            "when_all_down": "none",
            "interfaces": interfaces,
        }
        self.daemon = self.daemons.start(self.lab, config, verbose=True)
        self.pingu.wait_ready()  # a lease added before it may be captured by the start-up dump
        self.cursor = self.pingu.mark()

    def _uplink_settings(self, cells: dict[str, str]) -> dict[str, Any]:
        def seconds(text: str) -> float:
            return float(text.strip().removesuffix("s").strip())

        name = cells["uplink"]
        settings: dict[str, Any] = {"metric": int(cells["metric"]), **ECHO_TIMING}
        settings["period"] = seconds(cells.get("period", "").strip() or "5") * LAB_TIME_SCALE
        for key in ("fall", "rise"):
            if cells.get(key, "").strip():
                settings[key] = int(cells[key])
        if cells.get("reset_script_grace_period", "").strip():
            settings["reset_script_grace_period"] = seconds(cells["reset_script_grace_period"])
        if cells.get("reset_script", "").strip():
            settings["reset_script"] = self._recording_script(name, cells["reset_script"])
        return settings

    def _recording_script(self, uplink: str, feature_path: str) -> str:
        """The lab's stand-in for ``feature_path``: appends one line per run to a record."""
        record = self.workdir / f"{uplink}.runs"
        record.touch()
        self.records[uplink] = record
        name = feature_path.strip("/").replace("/", "-")
        # One line per run: who, why, and whether pingu's route was still there.
        text = (
            "#!/bin/sh\n"
            f'if ip route show default dev "$PINGU_INTERFACE" proto {PROTO} | grep -q .; '
            "then route=present; else route=absent; fi\n"
            f'echo "$PINGU_INTERFACE $PINGU_EVENT route=$route $PINGU_REASON" >> {record}\n'
        )
        self.script_names[uplink] = name
        return write_script(self.workdir / name, text)

    def script_runs(self, uplink: str) -> list[str]:
        """The recording script's lines since the last step's event, waited for (one at
        least), as "route=present|absent REASON"."""
        record = self.records[uplink]
        start = self.step_batch().start
        before = sum(
            1 for line in self.pingu.log_lines()[:start] if STARTED.search(line) and uplink in line
        )

        def runs() -> list[str] | None:
            lines = record.read_text().splitlines()[before:]
            return [line.split(" ", 2)[2] for line in lines] or None

        return _poll(runs, f"{uplink}'s reset script to run")

    # -- given/when: links, leases, rounds, time -----------------------------------------

    def lease(self, uplink: str, feature_gateway: str) -> None:
        """The DHCP client of ``uplink`` installs its default route; pingu captures it."""
        gateway = self.net.gateway(uplink)
        known = self.gateways.setdefault(feature_gateway, gateway)
        assert known == gateway, f"{feature_gateway} already stands for {known}"
        self.net.dhcp_add(uplink, metric=DHCP_METRIC)
        captured = rf" {uplink}: captured default via {re.escape(gateway)} "
        self._act(uplink)
        self.batch = self._wait_batch(lambda b: any(re.search(captured, x) for x in b.lines))
        self.cursor = self.step_batch().end
        self.pingu.until(lambda: uplink in self.pingu.own_routes(), f"pingu's route on {uplink}")

    def round(self, uplink: str, passes: bool) -> None:
        """The next round on ``uplink`` passes (upstream there) or fails (upstream cut)."""
        if (uplink in self.cut) == passes:
            if self.just_judged != uplink:
                self._take_round(uplink, None)  # a round may be in flight: let it end first
            self._act(uplink)
            if passes:
                self.net.restore_upstream(uplink)
                self.cut.discard(uplink)
            else:
                self.net.cut_upstream(uplink)
                self.cut.add(uplink)
        self._act(uplink)
        self.batch = self._take_round(uplink, "passed" if passes else "failed")
        self.just_judged = uplink

    def carrier(self, uplink: str, up: bool) -> None:
        """``uplink`` loses its carrier, or gets it back."""
        if not up and self.just_judged != uplink:
            self._take_round(uplink, None)
        self._act(uplink)
        if up:
            self.net.carrier_up(uplink)
        else:
            self.net.carrier_down(uplink)
        link = re.compile(rf"ifname='{re.escape(uplink)}', carrier={up}\b")
        self.batch = self._wait_batch(
            lambda b: b.kind == "LinkChanged" and bool(link.search(b.args))
        )
        self.cursor = self.step_batch().end
        self.just_judged = None

    def time_passes(self) -> None:
        """The lab's time passes by itself: only the moment is noted."""
        self.since = time.monotonic()

    def _act(self, uplink: str) -> None:
        self.subject = uplink
        self.since = time.monotonic()

    # -- then: what the daemon did in the last step ---------------------------------------

    def verdicts(self, uplink: str) -> list[tuple[str, str]]:
        verdict = self.step_batch().verdict(uplink)
        return [verdict] if verdict else []

    def states(self, uplink: str) -> list[tuple[str, str]]:
        return self.step_batch().states(uplink)

    def did(self, action: str, route: FeatureRoute) -> bool:
        """Whether the last step's event made pingu ``action`` ("installed", "removed")
        ``route``."""
        told = re.compile(rf" {action} {re.escape(route.describe())}$")
        return any(told.search(line) for line in self.step_batch().lines)

    def route_changes(self) -> list[str]:
        return self.step_batch().changes()

    def translate(self, text: str) -> FeatureRoute:
        """A route in a feature's words (`default via 192.0.2.1 dev wan1 proto pingu metric
        100`) in the lab's (`default via 100.64.1.1 dev wan1 proto 136 metric 100`)."""
        destination, *words = text.split()
        assert destination == "default", f"the lab binding knows default routes only: {text}"
        attributes = dict(zip(words[::2], words[1::2], strict=True))
        via = attributes.get("via")
        assert via is None or via in self.gateways, f"{via} stands for no lab gateway yet"
        return FeatureRoute(
            gateway=self.gateways[via] if via else None,
            dev=attributes["dev"],
            proto=_named(attributes.get("proto", "boot"), PROTOCOLS),
            metric=int(attributes.get("metric", "0")),
            table=_named(attributes.get("table", "main"), TABLES),
        )

    # -- then: the kernel and the daemon's state now --------------------------------------

    def default_routes(self) -> list[Route]:
        """Table main's default routes now; only if the daemon changed nothing since the
        last step (else Inconclusive)."""
        routes = self.net.default_routes()
        self._nothing_changed_since_step("the table")
        return routes

    def health(self, uplink: str) -> str:
        """What the daemon says of ``uplink``'s health (SIGUSR1 makes it log its state)."""
        mark = self.pingu.mark()
        self.pingu.send_signal(signal.SIGUSR1)
        told = self.pingu.wait_log(rf" {re.escape(uplink)}: {HEALTH.pattern}", after=mark)
        self._nothing_changed_since_step(f"{uplink}'s health")
        return told["health"]

    def _nothing_changed_since_step(self, what: str) -> None:
        later = [
            line
            for line in self.pingu.log_lines()[self.cursor :]
            if CHANGE.search(line) or STATE.search(line)
        ]
        if later:
            raise Inconclusive(
                f"{what} was read after the daemon had moved on from this step "
                f"(a slow machine?): {later}"
            )

    # -- then: rounds -----------------------------------------------------------------------

    def round_starts(self, uplink: str, feature_gateway: str) -> None:
        """A round starts on ``uplink`` through ``feature_gateway``'s lab gateway: its echoes
        reach the target, or (upstream cut) the daemon ends one, sent via that gateway."""
        gateway = self.gateways[feature_gateway]
        mine = self.net.local_address(uplink)

        def evidence() -> int | str | None:
            if any(e.src == mine and e.time > self.since for e in self.net.responder_log()):
                return "echo"
            return self._next_verdict(uplink)

        seen = _poll(evidence, f"a round on {uplink}")
        if isinstance(seen, int):
            seen = self._settled(seen)
        if isinstance(seen, Batch):
            self._check_echoes_via(uplink, gateway, seen)
            self.just_judged = uplink
        else:  # in flight: its echo lines are logged when it ends
            self.pending_gateway[uplink] = gateway
            self.just_judged = None

    def no_round_starts(self) -> None:
        """The last step started no round on its uplink, nor did the round due next: no echo
        of it reached a target and the prober was not asked (it logs `round not sent` when
        asked on an unusable link); watched until the daemon's next verdict on that uplink."""
        uplink = self.subject
        assert uplink is not None
        verdict = self._wait_verdict(uplink)
        window = self.pingu.log_lines()[self.cursor : verdict.end]
        probed = [line for line in window if re.search(rf" {uplink}: (round not sent|echo )", line)]
        assert not probed, f"a round was started on {uplink}: {probed}"
        mine = self.net.local_address(uplink)
        echoes = [e for e in self.net.responder_log() if e.src == mine and e.time > self.since]
        assert not echoes, f"echoes from {uplink} reached a target: {echoes}"

    def scripts_started_since_step(self) -> tuple[list[str], dict[str, int]]:
        """After the daemon's next verdict on every uplink: the script starts it logged since
        the last step's event, and the lines each recording script wrote since then."""
        before = {u: len(r.read_text().splitlines()) for u, r in self.records.items()}
        start = self.step_batch().start
        for uplink in self.net.uplinks:
            self._wait_verdict(uplink)
        started = [line for line in self.pingu.log_lines()[start:] if STARTED.search(line)]
        written = {u: len(r.read_text().splitlines()) - before[u] for u, r in self.records.items()}
        return started, written

    # -- plumbing ---------------------------------------------------------------------------

    def _fence(self) -> int:
        """Wait until the daemon has handled every event it had before now; returns the
        index of the fence's own event line."""
        self.fences += 1
        route = f"default dev lo table {FENCE_TABLE} proto static metric {self.fences} scope link"
        self.net.run("daemon", ["ip", "route", "add", *route.split()])
        self.net.run("daemon", ["ip", "route", "del", *route.split()])
        seen = re.compile(
            rf" DEBUG event RouteAppeared\(route=Route\(ifindex=\d+, ifname='lo', gateway=None, "
            rf"metric={self.fences}, proto=4, table={FENCE_TABLE},"
        )

        def fence_line() -> int | None:
            lines = self.pingu.log_lines()
            return next((i for i in range(self.cursor, len(lines)) if seen.search(lines[i])), None)

        return _poll(fence_line, "the daemon to handle a fence event")

    def _settled(self, start: int) -> Batch:
        """The batch of the event at line ``start``, once the daemon is done with it."""
        self._fence()
        return batch_at(self.pingu.log_lines(), start)

    def _first_event(self, wanted: Callable[[Batch], bool]) -> int | None:
        """The line of the first event after the cursor whose batch (so far) is ``wanted``."""
        lines = self.pingu.log_lines()
        return next(
            (i for i in event_starts(lines, self.cursor) if wanted(batch_at(lines, i))), None
        )

    def _next_verdict(self, uplink: str) -> int | None:
        """The line of the next event after the cursor that judged a round on ``uplink``
        (the verdict is the first thing logged for such an event)."""
        return self._first_event(lambda b: b.verdict(uplink) is not None)

    def _wait_verdict(self, uplink: str) -> Batch:
        start = _poll(lambda: self._next_verdict(uplink), f"a round judged on {uplink}")
        return self._settled(start)

    def _wait_batch(self, wanted: Callable[[Batch], bool]) -> Batch:
        start = _poll(lambda: self._first_event(wanted), "the daemon's handling of the step")
        return self._settled(start)

    def _take_round(self, uplink: str, outcome: str | None) -> Batch:
        """Move past the next round judged on ``uplink`` with ``outcome`` (None: any, but it
        must change nothing). Rounds of the other outcome before it must change nothing."""
        idle: list[Batch] = []
        while True:
            batch = self._wait_verdict(uplink)
            self.cursor = batch.end
            verdict = batch.verdict(uplink)
            assert verdict is not None
            self._check_pending_gateway(uplink, batch)
            if outcome is not None and verdict[0] == outcome:
                return batch
            effects = batch.effects(uplink)
            if effects:
                raise AssertionError(
                    f"a round on {uplink} {verdict[0]} and changed things "
                    f"{'while the lab set up the next step' if outcome else ''}: {effects}"
                )
            if outcome is None:
                return batch
            idle.append(batch)
            assert len(idle) <= MAX_IDLE_ROUNDS, (
                f"waiting for a {outcome} round on {uplink}, got only: "
                + "; ".join(str(b.verdict(uplink)) for b in idle)
            )

    def _check_pending_gateway(self, uplink: str, batch: Batch) -> None:
        gateway = self.pending_gateway.pop(uplink, None)
        if gateway is not None:
            self._check_echoes_via(uplink, gateway, batch)

    def _check_echoes_via(self, uplink: str, gateway: str, batch: Batch) -> None:
        """The echo lines the prober logged for the round ``batch`` judged all went through
        ``gateway`` (they come right before its event, since the previous verdict on it)."""
        lines = self.pingu.log_lines()[: batch.start]
        echoes: list[str] = []
        for line in reversed(lines):
            if (judged := JUDGED.search(line)) and judged["uplink"] == uplink:
                break
            if (echo := ECHO_LINE.search(line)) and echo["uplink"] == uplink:
                echoes.append(echo["gateway"])
        assert echoes, f"no echo logged for the round on {uplink}"
        assert set(echoes) == {gateway}, f"echoes of {uplink} went via {set(echoes)}"
