"""The verdict of a round: loss, delay, errors and the targets' quorum."""

from __future__ import annotations

from pingu.domain.model import RoundResult, TargetResult
from pingu.domain.verdict import judge, judge_target
from tests.unit.fakes import uplink

WAN = uplink("wan1", 100, count=5, max_lost=2, max_delay_ms=100.0)


def target(received: int, delay: float = 10.0, sent: int = 5, name: str = "t") -> TargetResult:
    return TargetResult(name, sent, received, (delay,) * received)


def test_passes_with_loss_at_max_lost() -> None:
    verdict = judge_target(target(3), WAN)
    assert verdict.passed
    assert "2/5 lost" in verdict.reason


def test_fails_with_loss_over_max_lost() -> None:
    verdict = judge_target(target(2), WAN)
    assert not verdict.passed
    assert "3/5 lost" in verdict.reason
    assert "max_lost 2" in verdict.reason


def test_fails_without_any_reply_even_when_max_lost_allows_it() -> None:
    lenient = uplink("wan1", 100, count=1, max_lost=0)
    assert not judge_target(TargetResult("t", 0, 0), lenient).passed


def test_average_delay_at_max_delay_fails() -> None:
    verdict = judge_target(target(5, delay=100.0), WAN)
    assert not verdict.passed
    assert "max_delay 100 ms" in verdict.reason
    assert judge_target(target(5, delay=99.9), WAN).passed


def test_average_not_worst_delay_counts() -> None:
    result = TargetResult("t", 5, 5, (10.0, 10.0, 10.0, 10.0, 150.0))
    assert judge_target(result, WAN).passed


def test_target_error_fails_with_its_reason() -> None:
    verdict = judge_target(TargetResult("t", 0, 0, error="ARP: no answer from 192.0.2.1"), WAN)
    assert not verdict.passed
    assert "ARP" in verdict.reason


def test_round_error_fails() -> None:
    verdict = judge(RoundResult((), error="carrier down"), WAN)
    assert verdict == verdict.__class__(False, "carrier down")


def test_quorum_counts_passing_targets() -> None:
    quorum = uplink("wan1", 100, targets=("a", "b", "c"), min_hosts_up=2)
    two_up = RoundResult((target(5, name="a"), target(5, name="b"), target(0, name="c")))
    one_up = RoundResult((target(5, name="a"), target(0, name="b"), target(0, name="c")))
    assert judge(two_up, quorum).passed
    verdict = judge(one_up, quorum)
    assert not verdict.passed
    assert "1/3 targets up (min_hosts_up 2)" in verdict.reason


def test_early_verdict_is_said() -> None:
    verdict = judge(RoundResult((target(0, sent=3),), early=True), WAN)
    assert not verdict.passed
    assert "early verdict" in verdict.reason
