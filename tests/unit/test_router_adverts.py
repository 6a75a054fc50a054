"""Router advertisements as the listener reads them: built by scapy (the oracle), checked
as RFC 4861 asks of a host, and bounded in rate."""

from __future__ import annotations

import socket
import struct

import pytest
from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr

from pingu.adapters.router_adverts import (
    ROUTER_ADVERT,
    TokenBucket,
    _hop_limit,
    parse_advert,
    type_filter,
)
from pingu.domain.events import RouterAdvertised


def advert(lifetime: int) -> bytes:
    source = ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    prefix = ICMPv6NDOptPrefixInfo(prefix="2001:db8:1::", prefixlen=64)
    return bytes(ICMPv6ND_RA(routerlifetime=lifetime) / source / prefix)


def test_an_advertisement_says_who_offers_itself_on_which_link_for_how_long() -> None:
    assert parse_advert(advert(1800), "fe80::1%wan1", 2, 255) == RouterAdvertised(
        2, "fe80::1", 1800
    )
    assert parse_advert(advert(0), "fe80::1", 2, 255) == RouterAdvertised(2, "fe80::1", 0)
    assert parse_advert(advert(65535), "fe80::a:b", 7, 255) == RouterAdvertised(
        7, "fe80::a:b", 65535
    )


@pytest.mark.parametrize(
    ("data", "source", "scope", "hops", "why"),
    [
        (advert(1800), "fe80::1", 2, 64, "forwarded: hop limit below 255"),
        (advert(1800), "fe80::1", 2, None, "no hop limit given"),
        (advert(1800), "2001:db8::1", 2, 255, "not from a link-local address"),
        (advert(1800), "fe80::1", 0, 255, "no interface"),
        (advert(1800), "not an address", 2, 255, "a source that is no address"),
        (advert(1800)[:15], "fe80::1", 2, 255, "shorter than an advertisement"),
        (bytes([135]) + advert(1800)[1:], "fe80::1", 2, 255, "another ICMPv6 type"),
        (advert(1800)[:1] + b"\x01" + advert(1800)[2:], "fe80::1", 2, 255, "code not 0"),
        (b"", "fe80::1", 2, 255, "empty"),
    ],
)
def test_what_a_host_must_ignore_is_ignored(
    data: bytes, source: str, scope: int, hops: int | None, why: str
) -> None:
    assert parse_advert(data, source, scope, hops) is None, why


def test_the_kernel_filter_passes_router_advertisements_only() -> None:
    words = struct.unpack("=8I", type_filter(ROUTER_ADVERT))
    passed = [t for t in range(256) if not words[t >> 5] & (1 << (t & 31))]
    assert passed == [ROUTER_ADVERT]


def test_the_hop_limit_is_read_from_its_ancillary_item() -> None:
    hops = (255).to_bytes(4, "little" if struct.pack("=I", 1)[0] == 1 else "big")
    assert _hop_limit([(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, hops)]) == 255
    assert _hop_limit([(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, b"\xff")]) is None
    assert _hop_limit([]) is None


def test_a_flood_is_cut_to_the_rate_after_its_burst() -> None:
    bucket = TokenBucket(rate=20.0, burst=100, now=0.0)
    passed = sum(bucket.take(0.0) for _ in range(1000))
    assert passed == 100
    passed = sum(bucket.take(1.0) for _ in range(1000))
    assert passed == 20  # one second later: the rate's worth
    assert sum(bucket.take(100.0) for _ in range(1000)) == 100  # never more than the burst
