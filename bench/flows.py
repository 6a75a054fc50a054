"""Traffic after a switch (issue 15): from pingu's route change to the flows it broke
running again over the new uplink, with ``flush_conntrack`` and ``kill_sockets`` on and
off, for a LAN behind masquerade and behind a static SNAT (:mod:`pingu.lab.lan`).

Each cycle cuts wan1's upstream, then restores it. Timed from the route change as the
bench's own netlink monitor in the daemon namespace saw it (pingu's wan1 route deleted;
added back), on the clock every process shares:

- the LAN's UDP tunnel (one socket, one source port, a datagram every 5 ms): until the
  server first receives one from the new uplink's address;
- the box's own TCP client (no timeout of its own, a line every 5 ms): until it sees
  its connection fail, and until its new connection is made over the new uplink;
- new connections from the LAN (one every 20 ms, each with a 1 s timeout): which of
  those started during the outage and in the second after the change succeeded.

The failover is measured on flows that started on wan1, the failback on flows started on
wan2 while wan1 was down. What is not seen within the window is reported as such."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.daemon import PROTO, lease_all
from bench.model import FAST
from bench.netlink import Event, Monitor, RouteEvent
from bench.results import Context, Result, Row, millis
from pingu.lab import Lab
from pingu.lab.lan import NAT_KINDS, Lan, NatKind
from pingu.lab.traffic import Server, Tool, Traffic

NAME = "flows"
WINDOW_S = 3.0  # what is not seen this long after the route change counts as never
NEW_AFTER_S = 1.0  # new connections started this long after the change are counted
NEW_TIMEOUT_MS = 1000.0
ROUTE_WAIT_S = 15.0
POLL_S = 0.01
TARGET_S = 0.1


@dataclass
class Switch:
    """What one route change did to the flows it broke (seconds after the change)."""

    udp_s: float | None = None
    error_s: float | None = None
    reconnect_s: float | None = None
    new_after: tuple[int, int] = (0, 0)  # (succeeded, started) in NEW_AFTER_S after it
    new_outage: tuple[int, int] = (0, 0)  # (succeeded, started) from the cut to the change
    error: str | None = None  # what the box's program saw


@dataclass
class Case:
    """One NAT kind, the feature on or off: its cycles."""

    nat: NatKind
    on: bool
    failover: list[Switch] = field(default_factory=list)
    failback: list[Switch] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.nat}-{'on' if self.on else 'off'}"


def flows(ctx: Context) -> Result:
    cycles = ctx.pick(8, 2)
    cases = [_case(ctx, nat, on, cycles) for nat in NAT_KINDS for on in (True, False)]
    raw: dict[str, Any] = {
        "profile": FAST.settings(),
        "window_s": WINDOW_S,
        "cycles": cycles,
        "cases": {
            c.key: {"failover": _dicts(c.failover), "failback": _dicts(c.failback)} for c in cases
        },
    }
    return Result(NAME, _rows(ctx, cases), raw)


def _dicts(switches: list[Switch]) -> list[dict[str, Any]]:
    return [asdict(s) for s in switches]


def _case(ctx: Context, nat: NatKind, on: bool, cycles: int) -> Case:
    case = Case(nat, on)
    settings = {"flush_conntrack": on, "kill_sockets": on}
    from bench.figures import start_pingu  # noqa: PLC0415 (figures imports this module)

    with ExitStack() as stack:
        lab = stack.enter_context(Lab(["wan1", "wan2"]))
        lan = stack.enter_context(Lan(lab, nat))
        traffic = stack.enter_context(Traffic(lab, lan, lifetime_s=600))
        monitor = stack.enter_context(Monitor(lab.daemon_ns))
        lease_all(lab)
        pingu = start_pingu(lab, ctx, f"{NAME}-{case.key}", FAST, monitor, **settings)
        stack.callback(pingu.stop)
        server = traffic.server()
        new = traffic.new_connections("new", every_ms=20, timeout_ms=NEW_TIMEOUT_MS)
        wan1, wan2 = lab.local_address("wan1"), lab.local_address("wan2")
        index = lab.ifindex("wan1")
        time.sleep(FAST.period_s)
        for n in range(cycles):
            old = _flows(traffic, server, f"{n}a", wan1)
            cut = time.monotonic()
            lab.cut_upstream("wan1")
            gone = monitor.wait(_own_route("del", index), cut, ROUTE_WAIT_S)
            if gone is None:
                raise RuntimeError(f"{case.key}: wan1's route never went; {pingu.log()[-2000:]}")
            case.failover.append(_measure(server, old, new, wan2, fault=cut, change=gone.time))
            # Flows that start now start on wan2: the failback is theirs to survive.
            started = _flows(traffic, server, f"{n}b", wan2)
            restore = time.monotonic()
            lab.restore_upstream("wan1")
            back = monitor.wait(_own_route("new", index), restore, ROUTE_WAIT_S)
            if back is None:
                raise RuntimeError(f"{case.key}: wan1's route never came back")
            case.failback.append(
                _measure(server, started, new, wan1, fault=restore, change=back.time)
            )
            traffic.stop(*old, *started)
    return case


def _own_route(kind: str, index: int) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return isinstance(event, RouteEvent) and event.kind == kind and event.owned(PROTO, index)

    return match


def _flows(traffic: Traffic, server: Server, tag: str, via: str) -> tuple[Tool, Tool]:
    """A tunnel and a box client, once both reach the server from ``via``."""
    tunnel = traffic.udp_tunnel(f"tunnel-{tag}", every_ms=5, sport=_port(tag))
    box = traffic.tcp_client(f"box-{tag}", "box", every_ms=5)
    for tool in (tunnel, box):
        server.wait_from(tool, via, timeout=ROUTE_WAIT_S)
    return tunnel, box


def _port(tag: str) -> int:
    """A fixed source port of its own for each tunnel of the case."""
    number, side = int(tag[:-1]), tag[-1]
    return 52000 + 2 * number + (side == "b")


def _measure(
    server: Server, flows: tuple[Tool, Tool], new: Tool, via: str, *, fault: float, change: float
) -> Switch:
    """Wait (up to WINDOW_S after the change) for what the change should bring back."""
    tunnel, box = flows
    switch = Switch()
    deadline = change + WINDOW_S
    while time.monotonic() < deadline:
        if switch.udp_s is None:
            first = server.received(tunnel.name, src=via, after=change, kind="udp")
            switch.udp_s = first[0]["t"] - change if first else None
        if switch.error_s is None:
            errors = box.events("error", after=change)
            if errors:
                switch.error_s, switch.error = errors[0]["t"] - change, errors[0]["error"]
        if switch.error_s is not None and switch.reconnect_s is None:
            again = [e for e in box.events("connected", after=change) if e["local"] == via]
            switch.reconnect_s = again[0]["t"] - change if again else None
        settled = time.monotonic() > change + NEW_AFTER_S + NEW_TIMEOUT_MS / 1000 + 0.1
        if settled and None not in (switch.udp_s, switch.error_s, switch.reconnect_s):
            break
        time.sleep(POLL_S)
    attempts = new.events("attempt")
    switch.new_after = _share(attempts, change, change + NEW_AFTER_S)
    switch.new_outage = _share(attempts, fault, change)
    return switch


def _share(attempts: list[dict[str, Any]], start: float, end: float) -> tuple[int, int]:
    within = [a for a in attempts if start <= a["started"] < end]
    return sum(1 for a in within if a["ok"]), len(within)


# --------------------------------------------------------------------- the rows


def _times(values: list[float | None]) -> str:
    seen = [v for v in values if v is not None]
    if not seen:
        return f"never within {WINDOW_S:g} s ({len(values)} of {len(values)})"
    text = f"median {millis(statistics.median(seen))}, worst {millis(max(seen))}"
    missed = len(values) - len(seen)
    return text + (f", never within {WINDOW_S:g} s in {missed} of {len(values)}" if missed else "")


def _both(case: Case, pick: Callable[[Switch], float | None]) -> str:
    over = _times([pick(s) for s in case.failover])
    back = _times([pick(s) for s in case.failback])
    return f"failover {over}; failback {back}"


def _met(case: Case, pick: Callable[[Switch], float | None]) -> bool:
    values = [pick(s) for s in case.failover + case.failback]
    return bool(values) and all(v is not None and v <= TARGET_S for v in values)


def _new(case: Case) -> str:
    def total(switches: list[Switch], which: str) -> tuple[int, int]:
        pairs = [getattr(s, which) for s in switches]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    after_ok, after_n = total(case.failover, "new_after")
    outage_ok, outage_n = total(case.failover, "new_outage")
    back_ok, back_n = total(case.failback, "new_after")
    return (
        f"started in the second after the failover: {after_ok} of {after_n} succeeded; "
        f"during the outage before it: {outage_ok} of {outage_n}; in the second after the "
        f"failback: {back_ok} of {back_n}"
    )


def _rows(ctx: Context, cases: list[Case]) -> list[Row]:
    rows: list[Row] = []
    by = {(c.nat, c.on): c for c in cases}
    command = ctx.command(NAME)
    n = len(cases[0].failover) if cases else 0
    for nat in NAT_KINDS:
        on, off = by[(nat, True)], by[(nat, False)]
        errors = sorted({s.error for s in on.failover + on.failback if s.error})
        rows += [
            Row(
                f"UDP tunnel after a switch ({nat}): route change → its first datagram "
                f"via the new uplink ({n} failovers, {n} failbacks)",
                f"on: {_both(on, lambda s: s.udp_s)}. off: {_both(off, lambda s: s.udp_s)}",
                "on: ≤ 100 ms",
                command,
                _udp_reading(nat),
                _met(on, lambda s: s.udp_s),
            ),
            Row(
                f"the box's own TCP connection after a switch ({nat} LAN): route change → "
                "its program sees the connection fail",
                f"on: {_both(on, lambda s: s.error_s)} ({', '.join(errors) or 'no error'}). "
                f"off: {_both(off, lambda s: s.error_s)}",
                "on: ≤ 100 ms",
                command,
                "pingu destroys the connections of the old uplink's address (sock_diag, as "
                "`ss -K`): a blocked call returns ECONNABORTED at once. Off, nothing tells "
                "the program: its segments leave the new uplink with the old address and "
                "are dropped, and TCP gives up only after its retransmissions "
                "(tcp_retries2: about 15 minutes), or a keepalive, if the program set one.",
                _met(on, lambda s: s.error_s),
            ),
            Row(
                f"the box's own TCP connection after a switch ({nat} LAN): route change → "
                "its new connection over the new uplink is made",
                f"on: {_both(on, lambda s: s.reconnect_s)}. "
                f"off: {_both(off, lambda s: s.reconnect_s)}",
                "on: ≤ 100 ms",
                command,
                "The program reconnects 20 ms after the error (its own pause); the new "
                "connection takes the new route and the new uplink's address. Off, it never "
                "tries: it has seen no error.",
                _met(on, lambda s: s.reconnect_s),
            ),
            Row(
                f"new connections from the LAN during a switch ({nat})",
                f"on: {_new(on)}. off: {_new(off)}",
                "on: all that start after the route change succeed",
                command,
                "A new connection makes a new conntrack entry, NATed to the uplink its "
                "route takes: it needs nothing of pingu, feature on or off. Those started "
                "between the cut and the route change go out of the dead uplink: that is "
                "the detection time (the probe settings), not the flows' business.",
                _all_new(on),
            ),
        ]
    return rows


def _all_new(case: Case) -> bool:
    pairs = [s.new_after for s in case.failover + case.failback]
    return bool(pairs) and all(ok == started and started > 0 for ok, started in pairs)


def _udp_reading(nat: NatKind) -> str:
    if nat == "snat":
        return (
            "A static SNAT entry keeps the old uplink's address: off, the tunnel's datagrams "
            "leave the new uplink with it and its ISP drops them (the lab's ISPs filter "
            "sources, as real ones do), for as long as the tunnel keeps the entry alive. "
            "On, pingu deletes the entries NATed to that address right after the route "
            "change (one kernel-filtered ctnetlink dump, one delete per entry), and the "
            "next datagram is NATed anew; what is left is that pass and the tunnel's 5 ms "
            "spacing."
        )
    return (
        "Masquerade needs nothing: off, the kernel drops a masqueraded entry when its "
        "packets leave by another interface (that packet is lost) and the next one is "
        "NATed anew, so the tunnel is back after about one spacing (5 ms) and a lost "
        "datagram. On, pingu deletes the entry too (ctnetlink cannot tell masquerade from "
        "SNAT to the uplink's address), often after the kernel already did."
    )
