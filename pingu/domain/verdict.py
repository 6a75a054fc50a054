"""The verdict of a round: loss, average delay and the targets' quorum."""

from __future__ import annotations

from dataclasses import dataclass

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
    tally = f"{result.lost}/{result.sent} lost"
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


def judge(result: RoundResult, uplink: UplinkConfig) -> Verdict:
    """The round passes when at least `min_hosts_up` targets pass."""
    if result.error is not None:
        return Verdict(False, result.error)
    verdicts = [judge_target(t, uplink) for t in result.targets]
    passed = sum(v.passed for v in verdicts)
    details = "; ".join(v.reason for v in verdicts) or "no target probed"
    early = " (early verdict)" if result.early else ""
    if len(verdicts) == 1:
        return Verdict(passed >= uplink.min_hosts_up, details + early)
    quorum = f"{passed}/{len(verdicts)} targets up (min_hosts_up {uplink.min_hosts_up})"
    return Verdict(passed >= uplink.min_hosts_up, f"{quorum}: {details}{early}")
