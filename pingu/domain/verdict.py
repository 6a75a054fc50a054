"""The verdict of a round: loss, average delay and the targets' quorum."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pingu.domain.config import UplinkConfig
from pingu.domain.model import RoundResult, TargetResult


@dataclass(frozen=True)
class Verdict:
    """Whether the round passed, and a one-line reason an operator can act on."""

    passed: bool
    reason: str


def judge_target(result: TargetResult, uplink: UplinkConfig) -> Verdict:
    """One target passes with at least one reply, lost <= max_lost, average < max_delay."""
    if result.error is not None and result.received == 0:
        return Verdict(False, f"{result.target}: {result.error}")
    tally = f"{result.lost}/{result.waited} lost"
    if result.abandoned:
        tally += f" (+{result.abandoned} not waited for)"
    if result.received == 0:
        return Verdict(False, f"{result.target}: {tally}, no reply")
    if result.lost > uplink.max_lost:
        return Verdict(False, f"{result.target}: {tally} (max_lost {uplink.max_lost})")
    average = result.average_ms
    assert average is not None  # received > 0, so there are delays
    delay = f"average {average:.1f} ms"
    if average >= uplink.max_delay_ms:
        return Verdict(
            False, f"{result.target}: {tally}, {delay} (max_delay {uplink.max_delay_ms:g} ms)"
        )
    return Verdict(True, f"{result.target}: {tally}, {delay}")


def judge(result: RoundResult, uplink: UplinkConfig, quorum: int | None = None) -> Verdict:
    """The round passes when at least `quorum` targets pass (`min_hosts_up`, capped at the
    number of targets of the round's family)."""
    needed = uplink.min_hosts_up if quorum is None else quorum
    if result.error is not None:
        return Verdict(False, result.error)
    verdicts = [judge_target(t, uplink) for t in result.targets]
    passed = sum(v.passed for v in verdicts)
    details = "; ".join(v.reason for v in verdicts) or "no target probed"
    early = " (early verdict)" if result.early else ""
    if len(verdicts) == 1:
        return Verdict(passed >= needed, details + early)
    tally = f"{passed}/{len(verdicts)} targets up (min_hosts_up {needed})"
    return Verdict(passed >= needed, f"{tally}: {details}{early}")


class Outlook(Enum):
    """Where a target, or a round, stands while its echoes are still out."""

    OPEN = "open"
    PASSES = "passes"
    FAILS = "fails"


@dataclass(frozen=True)
class Tally:
    """A target's echoes so far: `remaining` are still to be sent or in flight."""

    received: int
    lost: int
    remaining: int
    delay_sum_ms: float


def target_outlook(tally: Tally, max_lost: int, max_delay_ms: float, timeout_ms: float) -> Outlook:
    """The target's verdict when it is certain, whatever the remaining echoes bring.

    It fails once it has lost more than `max_lost`. It passes once even the worst that can
    come (every remaining echo lost, or answered just before its timeout) keeps at least one
    reply, at most `max_lost` lost and an average delay under `max_delay`.
    """
    if tally.lost > max_lost:
        return Outlook.FAILS
    if tally.received == 0:
        return Outlook.FAILS if tally.remaining == 0 else Outlook.OPEN
    average = tally.delay_sum_ms / tally.received
    if tally.remaining == 0:
        return Outlook.PASSES if average < max_delay_ms else Outlook.FAILS
    if tally.lost + tally.remaining > max_lost:
        return Outlook.OPEN
    slow = (tally.delay_sum_ms + tally.remaining * timeout_ms) / (tally.received + tally.remaining)
    return Outlook.PASSES if max(average, slow) < max_delay_ms else Outlook.OPEN


def round_outlook(targets: Sequence[Outlook], min_hosts_up: int) -> Outlook:
    """The round's verdict once its quorum is certain: `min_hosts_up` targets pass, or so
    many fail that the quorum cannot be reached."""
    needed = min(min_hosts_up, len(targets))
    if sum(t is Outlook.PASSES for t in targets) >= needed:
        return Outlook.PASSES
    if sum(t is Outlook.FAILS for t in targets) > len(targets) - needed:
        return Outlook.FAILS
    return Outlook.OPEN
