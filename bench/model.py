"""Probe settings, and what they alone allow: the failover floor, the failover and
failback a perfect daemon would show at a given phase of the round schedule, and the
split of a measured failover into schedule and pingu's own share."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.sniffer import Echo

PHASE_STEPS = 2000


@dataclass(frozen=True)
class Profile:
    """An uplink's probe settings (pingu's per-interface keys)."""

    name: str
    count: int
    interval_s: float
    timeout_s: float
    max_lost: int
    period_s: float

    def settings(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "interval": round(self.interval_s * 1000),
            "timeout": round(self.timeout_s * 1000),
            "max_lost": self.max_lost,
            "period": self.period_s,
        }

    def describe(self) -> str:
        return (
            f"count {self.count}, interval {self.interval_s * 1000:g} ms, timeout "
            f"{self.timeout_s * 1000:g} ms, max_lost {self.max_lost}, period {self.period_s:g} s"
        )

    @property
    def floor_s(self) -> float:
        """The least time max_lost + 1 lost echoes take: cut right before an echo."""
        return self.max_lost * self.interval_s + self.timeout_s

    @property
    def round_s(self) -> float:
        """A passing round, as pingu's check-config counts it (last echo + timeout)."""
        return (self.count - 1) * self.interval_s + self.timeout_s


SEED = Profile("seed", count=5, interval_s=0.5, timeout_s=1.0, max_lost=2, period_s=5.0)
FAST = Profile("fast", count=5, interval_s=0.2, timeout_s=0.5, max_lost=2, period_s=1.0)


def ideal_failover(p: Profile, phase: float) -> float:
    """Cut at ``phase`` seconds after a round started: time until max_lost + 1 echoes of
    one round have gone unanswered for a whole timeout, for a daemon that loses no time.

    Echo k of a round leaves k intervals after its start and is answered at once unless
    it left after the cut. A round ends when no echo is in flight (a lost echo keeps it
    open for its timeout) or, failing, as soon as its verdict is certain; the next round
    starts a period after this one started, or at once if this one ran longer."""
    start = 0.0
    for _ in range(4):
        sent = [start + k * p.interval_s for k in range(p.count)]
        lost = [t for t in sent if t >= phase]
        if len(lost) > p.max_lost:
            return lost[p.max_lost] + p.timeout_s - phase
        end = max([sent[-1]] + [t + p.timeout_s for t in lost])
        start = max(start + p.period_s, end)
    raise ValueError("these settings never fail a round")


def ideal_failback(p: Profile, phase: float) -> float:
    """Upstream back at ``phase`` seconds after a failing round started: time until a round
    has passed (its last echo answered), with rise 1, same rules as above."""
    start = 0.0
    for _ in range(4):
        sent = [start + k * p.interval_s for k in range(p.count)]
        lost = [t for t in sent if t < phase]
        if len(lost) <= p.max_lost:
            return sent[-1] - phase
        end = lost[p.max_lost] + p.timeout_s  # the early verdict
        start = max(start + p.period_s, end)
    raise ValueError("these settings never pass a round")


def over_phases(p: Profile, ideal: Callable[[Profile, float], float]) -> dict[str, float]:
    """Median and worst of ``ideal`` over phases spread evenly across one period."""
    values = [ideal(p, p.period_s * i / PHASE_STEPS) for i in range(PHASE_STEPS)]
    return {"median": statistics.median(values), "worst": max(values)}


@dataclass(frozen=True)
class Split:
    """A measured change split at the moment the settings made it due."""

    due: float  # monotonic time the verdict became certain (the decisive echo's timeout)
    schedule_s: float  # from the fault to that moment: the settings' share
    pingu_s: float  # from that moment to the route change: pingu's share


def split_failover(
    p: Profile, echoes: Sequence[Echo], local: str, cut: float, removed: float
) -> Split | None:
    """Find the round that failed: its (max_lost + 1)-th echo sent after the cut, plus
    the timeout, is when a perfect daemon would have removed the route."""
    rounds: dict[int, list[Echo]] = {}
    for echo in echoes:
        if echo.request and echo.src == local and cut <= echo.time <= removed:
            rounds.setdefault(echo.ident, []).append(echo)
    for sent in sorted(rounds.values(), key=lambda es: es[0].time):
        if len(sent) > p.max_lost:
            due = sent[p.max_lost].time + p.timeout_s
            return Split(due, due - cut, removed - due)
    return None


def split_failback(
    echoes: Sequence[Echo], local: str, restored: float, back: float
) -> Split | None:
    """The round that passed ended with the last reply it got before the route came
    back; from then on the time is pingu's."""
    replies = [e for e in echoes if not e.request and e.dst == local and restored <= e.time <= back]
    if not replies:
        return None
    last = replies[-1]
    return Split(last.time, last.time - restored, back - last.time)
