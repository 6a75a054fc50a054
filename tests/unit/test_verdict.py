"""The verdict of a round: loss, delay, errors and the targets' quorum."""

from __future__ import annotations

from pingu.domain.model import RoundResult, TargetResult
from pingu.domain.verdict import Outlook, Tally, judge, judge_target, round_outlook, target_outlook
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


# -- max_lost = count: any reply passes ----------------------------------------------------


def test_max_lost_equal_to_count_passes_with_one_reply_and_fails_with_none() -> None:
    any_reply = uplink("wan1", 100, count=10, max_lost=10)
    assert judge_target(target(1, sent=10), any_reply).passed
    verdict = judge_target(target(0, sent=10), any_reply)
    assert not verdict.passed
    assert "10/10 lost, no reply" in verdict.reason


# -- abandoned echoes: neither lost nor answered ---------------------------------------------


def test_echoes_not_waited_for_are_not_counted_as_lost() -> None:
    early = TargetResult("t", sent=5, received=0, abandoned=2)
    assert early.lost == 3
    assert early.waited == 3
    verdict = judge_target(early, WAN)
    assert verdict.reason == "t: 3/3 lost (+2 not waited for), no reply"


def test_a_pass_decided_early_says_how_many_were_not_waited_for() -> None:
    verdict = judge_target(TargetResult("t", 5, 3, (10.0,) * 3, abandoned=2), WAN)
    assert verdict.passed
    assert verdict.reason == "t: 0/3 lost (+2 not waited for), average 10.0 ms"


# -- when a verdict is certain before every echo is in ----------------------------------------


def outlook(received: int, lost: int, remaining: int, delay_ms: float = 10.0) -> Outlook:
    tally = Tally(received, lost, remaining, received * delay_ms)
    return target_outlook(tally, max_lost=2, max_delay_ms=100.0, timeout_ms=80.0)


def test_a_target_fails_for_certain_once_it_lost_more_than_max_lost() -> None:
    assert outlook(received=2, lost=3, remaining=0) is Outlook.FAILS
    assert outlook(received=0, lost=3, remaining=2) is Outlook.FAILS
    assert outlook(received=0, lost=2, remaining=3) is Outlook.OPEN


def test_a_target_passes_for_certain_once_the_worst_to_come_keeps_it_passing() -> None:
    assert outlook(received=3, lost=0, remaining=2) is Outlook.PASSES
    assert outlook(received=3, lost=1, remaining=2) is Outlook.OPEN  # 3 could be lost
    assert outlook(received=2, lost=0, remaining=3) is Outlook.OPEN
    assert outlook(received=0, lost=0, remaining=0) is Outlook.FAILS  # nothing came back


def test_the_delay_to_come_is_bounded_by_the_timeout() -> None:
    slow = Tally(3, 0, 2, 3 * 90.0)  # 90 ms so far; the rest could come at 150 ms
    assert target_outlook(slow, 2, max_delay_ms=100.0, timeout_ms=150.0) is Outlook.OPEN
    assert target_outlook(slow, 2, max_delay_ms=100.0, timeout_ms=95.0) is Outlook.PASSES
    done = Tally(3, 0, 0, 3 * 120.0)
    assert target_outlook(done, 2, max_delay_ms=100.0, timeout_ms=150.0) is Outlook.FAILS


def test_the_round_is_certain_once_its_quorum_is() -> None:
    passes, fails, open_ = Outlook.PASSES, Outlook.FAILS, Outlook.OPEN
    assert round_outlook([passes, open_, open_], min_hosts_up=1) is passes
    assert round_outlook([passes, open_, open_], min_hosts_up=2) is open_
    assert round_outlook([fails, fails, open_], min_hosts_up=2) is fails
    assert round_outlook([fails, open_, open_], min_hosts_up=2) is open_
    assert round_outlook([open_], min_hosts_up=3) is open_  # capped at the targets there are
    assert round_outlook([fails], min_hosts_up=3) is fails
