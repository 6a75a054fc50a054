"""Whether `pingu run` may start: the capabilities the kernel says this process holds.
(That the daemon refuses at once without them is proven on a real process, in a lab
namespace: tests/netns/test_capabilities.py.)"""

from __future__ import annotations

import pytest

from pingu.adapters.privileges import missing_capabilities, privilege_problem


def status(cap_eff: str) -> str:
    return f"Name:\tpingu\nCapInh:\t0\nCapEff:\t{cap_eff}\nCapBnd:\t000001ffffffffff\n"


@pytest.mark.parametrize(
    ("cap_eff", "missing"),
    [
        ("000001ffffffffff", []),  # root with every capability
        ("0000000000003000", []),  # exactly CAP_NET_ADMIN and CAP_NET_RAW (ambient, non-root)
        ("0000000000000000", ["CAP_NET_ADMIN", "CAP_NET_RAW"]),  # an ordinary user
        ("0000000000002000", ["CAP_NET_ADMIN"]),  # root under a set without it
        ("000001ffffffdfff", ["CAP_NET_RAW"]),
    ],
)
def test_the_two_capabilities_are_read_from_the_effective_set(
    cap_eff: str, missing: list[str]
) -> None:
    assert missing_capabilities(status(cap_eff)) == missing


def test_no_readable_set_counts_as_none() -> None:
    assert missing_capabilities("Name:\tpingu\n") == ["CAP_NET_ADMIN", "CAP_NET_RAW"]
    assert missing_capabilities("CapEff:\tzz\n") == ["CAP_NET_ADMIN", "CAP_NET_RAW"]


def test_the_refusal_is_one_line_that_says_what_is_missing() -> None:
    assert privilege_problem(status("000001ffffffffff")) is None
    assert privilege_problem(status("0000000000000000")) == (
        "pingu run needs CAP_NET_ADMIN and CAP_NET_RAW (run it as root); this process lacks "
        "CAP_NET_ADMIN and CAP_NET_RAW: not started, no route touched"
    )


def test_this_process_is_judged_by_its_own_status() -> None:
    with open("/proc/self/status") as own:
        assert missing_capabilities() == missing_capabilities(own.read())
