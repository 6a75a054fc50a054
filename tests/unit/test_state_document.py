"""The state document: what is saved, and what is trusted on load."""

from __future__ import annotations

import json

import pytest

from pingu.domain.health import Health
from pingu.domain.model import Lease, Route, RouteAttributes
from pingu.domain.state import STATE_KIND, SavedUplink, StateError, parse_state, state_document

BOOT = "6f1c0e8e-0000-4000-8000-000000000001"
NOW = 1_800_000_000.0
MTU = RouteAttributes(prefsrc="192.0.2.7", onlink=True, metrics=(("advmss", 1360), ("mtu", 1400)))
DHCP = Route(0, None, "192.0.2.1", 1024, 16, attributes=MTU)
STATIC = Route(0, None, "192.0.2.254", 7, 4)
PPP = Route(0, None, None, 0, 3, scope=253)


def saved() -> dict[str, SavedUplink]:
    return {
        "wan1": SavedUplink(Lease("192.0.2.1", (STATIC, DHCP), MTU), Health.UP, None),
        "ppp0": SavedUplink(Lease(None, (PPP,)), Health.DOWN, 90.0),
        "wan2": SavedUplink(None, Health.DOWN, None),
        "wan3": SavedUplink(Lease("192.0.2.9"), Health.UP, None),  # from a gateways file
    }


def document() -> dict[str, object]:
    return state_document(saved(), BOOT, NOW)


def test_a_document_round_trips_every_captured_route_whole() -> None:
    back = parse_state(json.loads(json.dumps(document())), BOOT, NOW + 10)
    expected = saved()
    expected["ppp0"] = SavedUplink(Lease(None, (PPP,)), Health.DOWN, 100.0)
    assert back == expected


def test_after_a_reboot_only_script_times_are_kept() -> None:
    back = parse_state(document(), "another-boot", NOW)
    assert back["wan1"] == SavedUplink(None, None, None)
    assert back["ppp0"] == SavedUplink(None, None, 90.0)


def test_a_script_time_in_the_future_counts_as_just_now() -> None:
    assert parse_state(document(), BOOT, NOW - 1000)["ppp0"].reset_script_ago == 0.0


def test_version_1_documents_are_still_read() -> None:
    # What pingu 0.1 wrote: one captured route's gateway, metric, proto and scope.
    old = {
        "kind": STATE_KIND,
        "version": 1,
        "boot_id": BOOT,
        "uplinks": {
            "wan1": {"gateway": "192.0.2.1", "metric": 1024, "proto": 16, "scope": 0},
            "ppp0": {"gateway": None, "metric": 0, "proto": 3, "scope": 253, "health": "down"},
            "wan2": {"health": "up", "reset_script_at": NOW - 5},
        },
    }
    back = parse_state(old, BOOT, NOW)
    assert back["wan1"] == SavedUplink(
        Lease("192.0.2.1", (Route(0, None, "192.0.2.1", 1024, 16),)), None, None
    )
    assert back["ppp0"] == SavedUplink(Lease(None, (PPP,)), Health.DOWN, None)
    assert back["wan2"] == SavedUplink(None, Health.UP, 5.0)


def broken(**changes: object) -> dict[str, object]:
    doc = document()
    uplinks = doc["uplinks"]
    assert isinstance(uplinks, dict)
    lease = dict(uplinks["wan1"]["lease"])
    route = {**lease["captured"][1], **changes.pop("route", {})}  # type: ignore[dict-item]
    lease["captured"] = [lease["captured"][0], route]
    new_lease = changes.pop("lease", {})
    if isinstance(new_lease, dict):
        lease.update(new_lease)
    uplinks["wan1"] = {
        **uplinks["wan1"],
        "lease": lease if isinstance(new_lease, dict) else new_lease,
        **changes,
    }
    return doc


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([], "not a pingu state file"),
        ({"kind": "something-else"}, "not a pingu state file"),
        ({"kind": STATE_KIND, "version": 99}, "state version 99"),
        ({"kind": STATE_KIND, "version": True}, "state version True"),
        ({"kind": STATE_KIND, "version": 2, "uplinks": []}, '"uplinks" must be an object'),
        (
            {"kind": STATE_KIND, "version": 2, "uplinks": {"wan1": 5}},
            "uplink 'wan1': must be an object",
        ),
        (broken(lease={"gateway": "192.0.2.300"}), "gateway '192.0.2.300' is not an IPv4"),
        (broken(lease={"gateway": 7}), "gateway 7 is not an IPv4 address"),
        (broken(lease={"captured": {}}), "captured must be a list"),
        (broken(lease={"captured": [{}] * 17}), "captured must be a list of at most 16"),
        (broken(lease=5), "lease must be an object"),
        (broken(route={"metric": -1}), "metric -1 is not an integer"),
        (broken(route={"proto": True}), "proto True is not an integer"),
        (broken(route={"scope": 256}), "scope 256 is not an integer"),
        (broken(route={"table": "main"}), "table 'main' is not an integer"),
        (broken(route={"attributes": []}), "attributes must be an object"),
        (broken(route={"attributes": {"MTU!": 1}}), "'MTU!' is not a route metric name"),
        (broken(route={"attributes": {"mtu": -5}}), "mtu -5 is not an integer"),
        (broken(route={"attributes": {"onlink": 1}}), "onlink 1 is not true or false"),
        (broken(route={"attributes": {"prefsrc": "x"}}), "prefsrc 'x' is not an IPv4"),
        (broken(health="failing"), "health 'failing'"),
        (broken(reset_script_at="yesterday"), "reset_script_at 'yesterday' is not a time"),
        (broken(reset_script_at=float("nan")), "is not a time"),
        (broken(reset_script_at=10**400), "is not a time"),
    ],
)
def test_untrustworthy_documents_are_refused_with_a_reason(doc: object, why: str) -> None:
    with pytest.raises(StateError, match=why):
        parse_state(doc, BOOT, NOW)
