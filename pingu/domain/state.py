"""What pingu keeps across restarts, and the rules that check a saved document.

The document is plain JSON:

    {"kind": "pingu-state", "version": 1, "boot_id": "...", "saved_at": 1790000000.0,
     "uplinks": {"wan1": {"gateway": "192.0.2.1", "metric": 1024, "proto": 16, "scope": 0,
                          "health": "up", "reset_script_at": 1789999000.0}}}

Times are wall-clock seconds (the monotonic clock restarts with the machine); the core
works with ages. Gateways and health only hold for the boot that saved them: after a
reboot the kernel's table starts empty and the DHCP/PPP clients learn afresh.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from pingu.domain.health import Health

STATE_KIND = "pingu-state"
STATE_VERSION = 1
_MAX_U32 = 2**32 - 1


class StateError(ValueError):
    """A saved state document that cannot be trusted (corrupt, foreign, or of another version)."""


@dataclass(frozen=True)
class SavedLease:
    """The attributes of the captured route an uplink's gateway was learned from."""

    gateway: str | None
    metric: int
    proto: int
    scope: int


@dataclass(frozen=True)
class SavedUplink:
    """One uplink's saved knowledge; `reset_script_ago` is seconds since its last reset."""

    lease: SavedLease | None
    health: Health | None
    reset_script_ago: float | None


def state_document(
    uplinks: dict[str, tuple[SavedLease | None, Health, float | None]],
    boot_id: str,
    now_wall: float,
) -> dict[str, object]:
    """The document for `uplinks` (name -> lease, health, reset-script seconds ago)."""
    body: dict[str, object] = {}
    for name, (lease, health, ago) in uplinks.items():
        entry: dict[str, object] = {"health": health.value}
        if lease is not None:
            entry.update(
                gateway=lease.gateway, metric=lease.metric, proto=lease.proto, scope=lease.scope
            )
        if ago is not None:
            entry["reset_script_at"] = round(now_wall - ago, 3)
        body[name] = entry
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "boot_id": boot_id,
        "uplinks": body,
    }


def parse_state(document: object, boot_id: str, now_wall: float) -> dict[str, SavedUplink]:
    """The uplinks of a saved document; raise StateError when it cannot be trusted.

    From another boot only reset-script times are kept (the grace period still holds).
    """
    if not isinstance(document, dict) or document.get("kind") != STATE_KIND:
        raise StateError('not a pingu state file (no "kind": "pingu-state")')
    if document.get("version") != STATE_VERSION:
        raise StateError(f"state version {document.get('version')!r}, expected {STATE_VERSION}")
    uplinks = document.get("uplinks")
    if not isinstance(uplinks, dict):
        raise StateError('"uplinks" must be an object')
    same_boot = document.get("boot_id") == boot_id
    saved: dict[str, SavedUplink] = {}
    for name, entry in uplinks.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            raise StateError(f"uplink {name!r}: must be an object")
        lease = _lease(name, entry) if same_boot else None
        health = _health(name, entry) if same_boot else None
        saved[name] = SavedUplink(lease, health, _ago(name, entry, now_wall))
    return saved


def _lease(name: str, entry: dict[object, object]) -> SavedLease | None:
    if "metric" not in entry:
        return None
    gateway = entry.get("gateway")
    if gateway is not None:
        try:
            ipaddress.IPv4Address(gateway if isinstance(gateway, str) else "")
        except ValueError:
            raise StateError(f"uplink {name}: gateway {gateway!r} is not an IPv4 address") from None
    fields: dict[str, int] = {}
    for key, hi in (("metric", _MAX_U32), ("proto", 255), ("scope", 255)):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
            raise StateError(f"uplink {name}: {key} {value!r} is not an integer 0..{hi}")
        fields[key] = value
    return SavedLease(
        gateway if isinstance(gateway, str) else None,
        fields["metric"],
        fields["proto"],
        fields["scope"],
    )


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
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise StateError(f"uplink {name}: reset_script_at {value!r} is not a time")
    # A time in the future (the clock was set back): as if the script had just run.
    return max(0.0, now_wall - float(value))
