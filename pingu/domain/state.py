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
from pingu.domain.model import MAIN_TABLE, Lease, Route, RouteAttributes

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
class SavedUplink:
    """One uplink's saved knowledge; `reset_script_ago` is seconds since its last reset."""

    lease: Lease | None
    health: Health | None
    reset_script_ago: float | None


def state_document(
    uplinks: dict[str, SavedUplink], boot_id: str, now_wall: float
) -> dict[str, object]:
    """The document for `uplinks` (reset-script ages are written as wall-clock times)."""
    body: dict[str, object] = {}
    for name, saved in uplinks.items():
        entry: dict[str, object] = {}
        if saved.health is not None:
            entry["health"] = saved.health.value
        if saved.lease is not None:
            entry["lease"] = _lease_document(saved.lease)
        if saved.reset_script_ago is not None:
            entry["reset_script_at"] = round(now_wall - saved.reset_script_ago, 3)
        body[name] = entry
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "boot_id": boot_id,
        "uplinks": body,
    }


def _lease_document(lease: Lease) -> dict[str, object]:
    return {
        "gateway": lease.gateway,
        "attributes": _attributes_document(lease.attributes),
        "captured": [_route_document(route) for route in lease.captured],
    }


def _attributes_document(attributes: RouteAttributes) -> dict[str, object]:
    document: dict[str, object] = dict(attributes.metrics)
    if attributes.prefsrc is not None:
        document["prefsrc"] = attributes.prefsrc
    if attributes.onlink:
        document["onlink"] = True
    return document


def _route_document(route: Route) -> dict[str, object]:
    return {
        "gateway": route.gateway,
        "metric": route.metric,
        "proto": route.proto,
        "scope": route.scope,
        "table": route.table,
        "tos": route.tos,
        "attributes": _attributes_document(route.attributes),
    }


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
            lease = _lease_v1(name, entry) if version == 1 else _lease(name, entry.get("lease"))
        health = _health(name, entry) if same_boot else None
        saved[name] = SavedUplink(lease, health, _ago(name, entry, now_wall))
    return saved


def _lease_v1(name: str, entry: dict[object, object]) -> Lease | None:
    """Version 1 kept one captured route: gateway, metric, proto and scope."""
    if "metric" not in entry:
        return None
    route = _route(name, {**entry, "table": MAIN_TABLE, "tos": 0})
    return Lease(route.gateway, (route,))


def _lease(name: str, value: object) -> Lease | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError(f"uplink {name}: lease must be an object")
    captured = value.get("captured", [])
    if not isinstance(captured, list) or len(captured) > _MAX_CAPTURED:
        raise StateError(f"uplink {name}: captured must be a list of at most {_MAX_CAPTURED}")
    routes = tuple(_route(name, item) for item in captured)
    return Lease(_gateway(name, value.get("gateway")), routes, _attributes(name, value))


def _route(name: str, value: object) -> Route:
    if not isinstance(value, dict):
        raise StateError(f"uplink {name}: a captured route must be an object")
    fields: dict[str, int] = {}
    for key, hi in (("metric", _MAX_U32), ("proto", 255), ("scope", 255), ("table", _MAX_U32)):
        fields[key] = _integer(name, key, value.get(key), hi)
    fields["tos"] = _integer(name, "tos", value.get("tos", 0), 255)
    gateway = _gateway(name, value.get("gateway"))
    # The interface index is the uplink's own when the route is put back.
    return Route(
        ifindex=0,
        ifname=None,
        gateway=gateway,
        attributes=_attributes(name, value),
        **fields,
    )


def _attributes(name: str, value: dict[object, object]) -> RouteAttributes:
    document = value.get("attributes", {})
    if not isinstance(document, dict):
        raise StateError(f"uplink {name}: attributes must be an object")
    prefsrc = document.get("prefsrc")
    if prefsrc is not None:
        prefsrc = _gateway(name, prefsrc, "prefsrc")
    onlink = document.get("onlink", False)
    if not isinstance(onlink, bool):
        raise StateError(f"uplink {name}: onlink {onlink!r} is not true or false")
    metrics: list[tuple[str, int]] = []
    for key, number in document.items():
        if key in ("prefsrc", "onlink"):
            continue
        if not isinstance(key, str) or not key or not set(key) <= _METRIC_NAME_CHARS:
            raise StateError(f"uplink {name}: {key!r} is not a route metric name")
        metrics.append((key, _integer(name, key, number, _MAX_U32)))
    return RouteAttributes(prefsrc, onlink, tuple(sorted(metrics)))


def _integer(name: str, key: str, value: object, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise StateError(f"uplink {name}: {key} {value!r} is not an integer 0..{hi}")
    return value


def _gateway(name: str, value: object, what: str = "gateway") -> str | None:
    if value is None:
        return None
    try:
        ipaddress.IPv4Address(value if isinstance(value, str) else "")
    except ValueError:
        raise StateError(f"uplink {name}: {what} {value!r} is not an IPv4 address") from None
    assert isinstance(value, str)
    return value


def _health(name: str, entry: dict[object, object]) -> Health | None:
    value = entry.get("health")
    if value is None:
        return None
    if value not in (Health.UP.value, Health.DOWN.value):
        raise StateError(f'uplink {name}: health {value!r} is not "up" or "down"')
    return Health(value)


def _ago(name: str, entry: dict[object, object], now_wall: float) -> float | None:
    value = entry.get("reset_script_at")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, int) and abs(value) > _MAX_TIME)
        or math.isnan(value)
    ):
        raise StateError(f"uplink {name}: reset_script_at {value!r:.40} is not a time")
    # A time in the future (the clock was set back): as if the script had just run.
    return max(0.0, now_wall - float(value))
