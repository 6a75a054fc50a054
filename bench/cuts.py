"""Upstream cuts and restores at random phases, timed from the kernel's side: the cut as
the ISP namespace's route change, the failover as pingu's route leaving table main. Each
uplink's cuts are of one family (IPv4 unless told), timed on that family's routes."""

from __future__ import annotations

import random
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

from bench.daemon import PROTO
from bench.model import (
    Profile,
    Split,
    ideal_failback,
    ideal_failover,
    over_phases,
    split_failback,
    split_failover,
)
from bench.netlink import (
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_ROUTE,
    RTN_BLACKHOLE,
    RTN_UNICAST,
    Event,
    Monitor,
    RouteEvent,
)
from bench.sniffer import EchoSniffer
from pingu.lab import Lab
from pingu.lab.lab import IPVersion

SLACK_S = 10.0  # beyond the settings' worst case, before a change counts as missed
ROUTE_GROUPS = {4: RTMGRP_IPV4_ROUTE, 6: RTMGRP_IPV6_ROUTE}


@dataclass
class Cut:
    """One cut and restore of one uplink's upstream (in one family)."""

    uplink: str
    cut_at: float
    family: int = 4
    removed_at: float | None = None
    restored_at: float | None = None
    back_at: float | None = None
    failover: Split | None = None
    failback: Split | None = None

    @property
    def failover_s(self) -> float | None:
        return None if self.removed_at is None else self.removed_at - self.cut_at

    @property
    def failback_s(self) -> float | None:
        if self.back_at is None or self.restored_at is None:
            return None
        return self.back_at - self.restored_at

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failover_s"] = self.failover_s
        data["failback_s"] = self.failback_s
        return data


def _upstream_change(kind: int, family: int) -> Any:
    def match(event: Event) -> bool:
        return (
            isinstance(event, RouteEvent)
            and event.kind == "new"
            and event.family == family
            and (event.dst_len == 0 and event.type == kind and event.table == 254)
        )

    return match


def _own(kind: str, ifindex: int, family: int) -> Any:
    def match(event: Event) -> bool:
        return (
            isinstance(event, RouteEvent)
            and event.kind == kind
            and event.owned(PROTO, ifindex, family)
        )

    return match


class _Worker:
    """Cuts and restores one uplink's upstream in one family ``cycles`` times, each after
    a random pause of up to one period, so that the faults fall at random phases of the
    round schedule."""

    def __init__(
        self,
        lab: Lab,
        uplink: str,
        *,
        profile: Profile,
        daemon: Monitor,
        isp: Monitor,
        sniffer: EchoSniffer,
        rng: random.Random,
        family: IPVersion = 4,
    ) -> None:
        self.lab, self.uplink, self.profile = lab, uplink, profile
        self.daemon, self.isp, self.sniffer, self.rng = daemon, isp, sniffer, rng
        self.family = family
        self.ifindex = lab.ifindex(uplink)
        self.local = lab.local_address(uplink) if family == 4 else lab.local_address6(uplink)
        self.cuts: list[Cut] = []
        self.error: BaseException | None = None

    def run(self, phases: list[float | None], delay: float = 0.0) -> None:
        try:
            time.sleep(delay)
            for phase in phases:
                self.cuts.append(self._cycle(phase))
        except BaseException as error:  # re-raised by the caller's thread
            self.error = error

    def _pause(self, phase: float | None) -> None:
        """A random pause of up to one period; or, given a phase, until that many seconds
        after the start of the next round (as the echoes show)."""
        p = self.profile
        if phase is None:
            time.sleep(self.rng.uniform(0, p.period_s))
            return
        start = self.sniffer.next_round(self.local, time.monotonic(), 3 * p.period_s)
        if start is None:
            raise RuntimeError(f"{self.uplink}: no round started within {3 * p.period_s} s")
        time.sleep(max(0.0, start + phase - time.monotonic()))

    def _cycle(self, phase: float | None) -> Cut:
        p = self.profile
        self._pause(phase)
        before = time.monotonic()
        self.lab.cut_upstream(self.uplink, self.family)
        seen = self.isp.wait(_upstream_change(RTN_BLACKHOLE, self.family), before, 5.0)
        cut = Cut(self.uplink, seen.time if seen else time.monotonic(), self.family)
        worst = p.period_s + p.count * p.interval_s + p.timeout_s + SLACK_S
        removed = self.daemon.wait(_own("del", self.ifindex, self.family), before, worst)
        if removed is not None:
            cut.removed_at = removed.time
            echoes = self.sniffer.between(cut.cut_at, removed.time)
            cut.failover = split_failover(p, echoes, self.local, cut.cut_at, removed.time)
        self._pause(phase)  # the restore at the same phase of a (failing) round
        before = time.monotonic()
        self.lab.restore_upstream(self.uplink, self.family)
        seen = self.isp.wait(_upstream_change(RTN_UNICAST, self.family), before, 5.0)
        cut.restored_at = seen.time if seen else time.monotonic()
        back = self.daemon.wait(_own("new", self.ifindex, self.family), before, worst)
        if back is not None:
            cut.back_at = back.time
            echoes = self.sniffer.between(cut.restored_at, back.time)
            cut.failback = split_failback(echoes, self.local, cut.restored_at, back.time)
        else:
            raise RuntimeError(f"{self.uplink}: pingu's route never came back after a restore")
        return cut


def cut_cycles(
    lab: Lab,
    daemon: Monitor,
    profile: Profile,
    uplinks: list[str],
    cycles: int,
    *,
    rng: random.Random,
    phased: bool = False,
    families: dict[str, IPVersion] | None = None,
    stagger: bool = False,
) -> list[Cut]:
    """``cycles`` cut/restore cycles on each of ``uplinks``, the uplinks in parallel (each
    on its own schedule: pingu probes uplinks independently). Cuts fall at random phases;
    ``phased``: at phases spread evenly over the period instead (the restores too), the
    same for every call with the same ``cycles``, so that runs of different sizes can be
    compared (and uplinks cut in different families). ``families``: the family each
    uplink's upstream is cut in (IPv4 unless told); ``daemon`` must then follow that
    family's routes. ``stagger``: the n-th uplink starts n periods after the first, so that
    (phased, with every round on one schedule) no two uplinks' changes fall at the same
    instant, where one would wait for pingu to decide the other."""
    chosen = families or {}
    if phased:
        phases: list[float | None] = [(i + 0.5) / cycles * profile.period_s for i in range(cycles)]
    else:
        phases = [None] * cycles
    with ExitStack() as stack:
        workers = []
        for uplink in uplinks:
            family = chosen.get(uplink, 4)
            isp = stack.enter_context(Monitor(lab.isp_ns(uplink), ROUTE_GROUPS[family]))
            sniffer = stack.enter_context(EchoSniffer(lab.daemon_ns, uplink))
            worker_rng = random.Random(rng.random())
            workers.append(
                _Worker(
                    lab,
                    uplink,
                    profile=profile,
                    daemon=daemon,
                    isp=isp,
                    sniffer=sniffer,
                    rng=worker_rng,
                    family=family,
                )
            )
        threads = [
            threading.Thread(
                target=w.run,
                args=(phases, i * profile.period_s if stagger else 0.0),
                name=f"cuts {w.uplink}",
                daemon=True,
            )
            for i, w in enumerate(workers)
        ]
        for thread in threads:
            thread.start()
        bound = cycles * (5 * profile.period_s + 2 * SLACK_S + 10) + len(workers) * profile.period_s
        for thread in threads:
            thread.join(bound)
        for worker, thread in zip(workers, threads, strict=True):
            if thread.is_alive():
                raise TimeoutError(f"cut cycles on {worker.uplink} did not end in {bound} s")
            if worker.error is not None:
                raise worker.error
        return [cut for worker in workers for cut in worker.cuts]


def cut_summary(profile: Profile, cuts: list[Cut]) -> dict[str, Any]:
    """The raw cuts plus the model's view of the same settings."""
    return {
        "profile": profile.settings(),
        "floor_s": profile.floor_s,
        "model_failover": over_phases(profile, ideal_failover),
        "model_failback": over_phases(profile, ideal_failback),
        "cuts": [c.as_dict() for c in cuts],
    }
