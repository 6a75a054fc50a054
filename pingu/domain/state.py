"""What pingu keeps across restarts, and the rules that check a saved document.

The document is plain JSON:

    {"kind": "pingu-state", "version": 2, "boot_id": "...",
     "uplinks": {"wan1": {"health": "up", "reset_script_at": 1789999000.0,
                          "lease": {"gateway": "192.0.2.1", "attributes": {"mtu": 1400},
                                    "captured": [{"gateway": "192.0.2.1", "metric": 1024,
                                                  "proto": 16, "scope": 0, ...}]}}}}

A lease is the gateway learned and every foreign route it was captured from, whole
(preferred source, `onlink`, route metrics such as the MTU), so that a clean stop after a
restart puts back exactly what the DHCP/PPP clients had installed. Version 1 (one captured
route of gateway, metric, proto and scope) is still read.

Times are wall-clock seconds (the monotonic clock restarts with the machine); the core
works with ages. Gateways and health only hold for the boot that saved them: after a
reboot the kernel's table starts empty and the DHCP/PPP clients learn afresh.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from pingu.domain.health import Health
from pingu.domain.model import MAIN_TABLE, Family, Lease, Route, RouteAttributes

STATE_KIND = "pingu-state"
STATE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_MAX_U32 = 2**32 - 1
_MAX_TIME = 2**62  # seconds; beyond it an integer is no time (and no float either)
_MAX_CAPTURED = 16  # default routes one uplink can have had captured: a few, never many
_METRIC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")


class StateError(ValueError):
    """A saved state document that cannot be trusted (corrupt, foreign, or of another version)."""


@dataclass(frozen=True)
class SavedPath:
    """One family of an uplink, saved: its lease (whose `valid_until`, here, is the seconds
    its router advertisement had left) and whether it was routed."""

    lease: Lease | None
    health: Health | None


@dataclass(frozen=True)
class SavedUplink:
    """One uplink's saved knowledge: IPv4's lease and health (the layout of version 1 and
    2), IPv6's when it has one, and seconds since its last reset."""

    lease: Lease | None
    health: Health | None
    reset_script_ago: float | None
    ipv6: SavedPath | None = None

    @classmethod
    def of(cls, paths: dict[Family, SavedPath], reset_script_ago: float | None) -> SavedUplink:
        ipv4 = paths.get(Family.IPV4, SavedPath(None, None))
        return cls(ipv4.lease, ipv4.health, reset_script_ago, paths.get(Family.IPV6))

    def paths(self) -> dict[Family, SavedPath]:
        paths = {Family.IPV4: SavedPath(self.lease, self.health)}
        if self.ipv6 is not None:
            paths[Family.IPV6] = self.ipv6
        return paths


def state_document(
    uplinks: dict[str, SavedUplink], boot_id: str, now_wall: float
) -> dict[str, object]:
    """The document for `uplinks` (reset-script ages are written as wall-clock times)."""
    body: dict[str, object] = {}
    for name, saved in uplinks.items():
        entry = _path_document(SavedPath(saved.lease, saved.health), now_wall)
        if saved.ipv6 is not None:
            entry["ipv6"] = _path_document(saved.ipv6, now_wall)
        if saved.reset_script_ago is not None:
            entry["reset_script_at"] = round(now_wall - saved.reset_script_ago, 3)
        body[name] = entry
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "boot_id": boot_id,
        "uplinks": body,
    }


def _path_document(saved: SavedPath, now_wall: float) -> dict[str, object]:
    entry: dict[str, object] = {}
    if saved.health is not None:
        entry["health"] = saved.health.value
    if saved.lease is not None:
        entry["lease"] = _lease_document(saved.lease, now_wall)
    return entry


def _lease_document(lease: Lease, now_wall: float) -> dict[str, object]:
    document: dict[str, object] = {
        "gateway": lease.gateway,
        "attributes": _attributes_document(lease.attributes),
        "captured": [_route_document(route) for route in lease.captured],
    }
    if lease.valid_until is not None:
        document["valid_until"] = round(now_wall + lease.valid_until, 3)
    return document


def _attributes_document(attributes: RouteAttributes) -> dict[str, object]:
    document: dict[str, object] = dict(attributes.metrics)
    if attributes.prefsrc is not None:
        document["prefsrc"] = attributes.prefsrc
    if attributes.onlink:
        document["onlink"] = True
    if attributes.pref is not None:
        document["pref"] = attributes.pref
    return document


def _route_document(route: Route) -> dict[str, object]:
    document: dict[str, object] = {
        "gateway": route.gateway,
        "metric": route.metric,
        "proto": route.proto,
        "scope": route.scope,
        "table": route.table,
        "tos": route.tos,
        "attributes": _attributes_document(route.attributes),
    }
    if route.family is Family.IPV6:
        document["family"] = 6
        document["expires"] = route.expires is not None
    return document


def parse_state(document: object, boot_id: str, now_wall: float) -> dict[str, SavedUplink]:
    """The uplinks of a saved document; raise StateError when it cannot be trusted.

    From another boot only reset-script times are kept (the grace period still holds).
    """
    if not isinstance(document, dict) or document.get("kind") != STATE_KIND:
        raise StateError('not a pingu state file (no "kind": "pingu-state")')
    version = document.get("version")
    if version not in _READABLE_VERSIONS or isinstance(version, bool):
        raise StateError(f"state version {version!r}, expected {STATE_VERSION}")
    uplinks = document.get("uplinks")
    if not isinstance(uplinks, dict):
        raise StateError('"uplinks" must be an object')
    same_boot = document.get("boot_id") == boot_id
    saved: dict[str, SavedUplink] = {}
    for name, entry in uplinks.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            raise StateError(f"uplink {name!r}: must be an object")
        lease = None
        if same_boot:
            lease = (
                _lease_v1(name, entry)
                if version == 1
                else _lease(name, entry.get("lease"), now_wall)
            )
        health = _health(name, entry) if same_boot else None
        ipv6 = _ipv6(name, entry.get("ipv6"), now_wall) if same_boot else None
        saved[name] = SavedUplink(lease, health, _ago(name, entry, now_wall), ipv6)
    return saved


def _ipv6(name: str, value: object, now_wall: float) -> SavedPath | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError(f"uplink {name}: ipv6 must be an object")
    return SavedPath(_lease(name, value.get("lease"), now_wall), _health(name, value))


def _lease_v1(name: str, entry: dict[object, object]) -> Lease | None:
    """Version 1 kept one captured route: gateway, metric, proto and scope."""
    if "metric" not in entry:
        return None
    route = _route(name, {**entry, "table": MAIN_TABLE, "tos": 0})
    return Lease(route.gateway, (route,))


def _lease(name: str, value: object, now_wall: float) -> Lease | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError(f"uplink {name}: lease must be an object")
    captured = value.get("captured", [])
    if not isinstance(captured, list) or len(captured) > _MAX_CAPTURED:
        raise StateError(f"uplink {name}: captured must be a list of at most {_MAX_CAPTURED}")
    routes = tuple(_route(name, item) for item in captured)
    family = routes[0].family if routes else Family.IPV4
    gateway = _gateway(name, value.get("gateway"), family=family)
    left = None
    if value.get("valid_until") is not None:
        until = _time(name, "valid_until", value.get("valid_until"))
        left = until - now_wall
    return Lease(gateway, routes, _attributes(name, value), left)


def _route(name: str, value: object) -> Route:
    if not isinstance(value, dict):
        raise StateError(f"uplink {name}: a captured route must be an object")
    fields: dict[str, int] = {}
    for key, hi in (("metric", _MAX_U32), ("proto", 255), ("scope", 255), ("table", _MAX_U32)):
        fields[key] = _integer(name, key, value.get(key), hi)
    fields["tos"] = _integer(name, "tos", value.get("tos", 0), 255)
    family_number = value.get("family", 4)
    if family_number not in (4, 6) or isinstance(family_number, bool):
        raise StateError(f"uplink {name}: family {family_number!r:.20} is not 4 or 6")
    family = Family(family_number)
    gateway = _gateway(name, value.get("gateway"), family=family)
    ends = value.get("expires", False)
    if not isinstance(ends, bool):
        raise StateError(f"uplink {name}: expires {ends!r:.20} is not true or false")
    # The interface index is the uplink's own when the route is put back; a route that
    # ends by itself goes back with what its lease has left.
    return Route(
        ifindex=0,
        ifname=None,
        gateway=gateway,
        attributes=_attributes(name, value),
        family=family,
        expires=0.0 if ends else None,
        **fields,
    )


def _attributes(name: str, value: dict[object, object]) -> RouteAttributes:
    document = value.get("attributes", {})
    if not isinstance(document, dict):
        raise StateError(f"uplink {name}: attributes must be an object")
    prefsrc = document.get("prefsrc")
    if prefsrc is not None:
        ipv6 = isinstance(prefsrc, str) and ":" in prefsrc
        prefsrc = _gateway(name, prefsrc, "prefsrc", Family.IPV6 if ipv6 else Family.IPV4)
    onlink = document.get("onlink", False)
    if not isinstance(onlink, bool):
        raise StateError(f"uplink {name}: onlink {onlink!r} is not true or false")
    pref = document.get("pref")
    if pref is not None:
        pref = _integer(name, "pref", pref, 3)
    metrics: list[tuple[str, int]] = []
    for key, number in document.items():
        if key in ("prefsrc", "onlink", "pref"):
            continue
        if not isinstance(key, str) or not key or not set(key) <= _METRIC_NAME_CHARS:
            raise StateError(f"uplink {name}: {key!r} is not a route metric name")
        metrics.append((key, _integer(name, key, number, _MAX_U32)))
    return RouteAttributes(prefsrc, onlink, tuple(sorted(metrics)), pref)


def _integer(name: str, key: str, value: object, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise StateError(f"uplink {name}: {key} {value!r} is not an integer 0..{hi}")
    return value


def _gateway(
    name: str, value: object, what: str = "gateway", family: Family = Family.IPV4
) -> str | None:
    if value is None:
        return None
    kind = ipaddress.IPv6Address if family is Family.IPV6 else ipaddress.IPv4Address
    try:
        kind(value if isinstance(value, str) else "")
    except ValueError:
        raise StateError(
            f"uplink {name}: {what} {value!r:.60} is not an {family.label.replace('ipv', 'IPv')} "
            "address"
        ) from None
    assert isinstance(value, str)
    return value


def _health(name: str, entry: dict[object, object]) -> Health | None:
    value = entry.get("health")
    if value is None:
        return None
    if value not in (Health.UP.value, Health.DOWN.value):
        raise StateError(f'uplink {name}: health {value!r} is not "up" or "down"')
    return Health(value)


def _time(name: str, key: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, int) and abs(value) > _MAX_TIME)
        or math.isnan(value)
    ):
        raise StateError(f"uplink {name}: {key} {value!r:.40} is not a time")
    return float(value)


def _ago(name: str, entry: dict[object, object], now_wall: float) -> float | None:
    value = entry.get("reset_script_at")
    if value is None:
        return None
    # A time in the future (the clock was set back): as if the script had just run.
    return max(0.0, now_wall - _time(name, "reset_script_at", value))
