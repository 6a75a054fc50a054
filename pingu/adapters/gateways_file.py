"""py-pingu's gateways file (`gateways_file`, often `./gw.json`): the last gateway of each
interface, `{"eno2": "192.0.2.1", "ppp0": null}` (null: a point-to-point route).

pingu reads it at start-up for uplinks its own state file knows no gateway of (a first start
after py-pingu, or after a reboot), and writes it whenever a gateway changes, in the same
format, so that going back to py-pingu finds the gateways pingu learned. pingu's own state
file stays the full record (captured routes whole, health, reset-script times). The file is
read and written through the state store (`JsonStateFile`), with the same care.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from pingu.domain.model import Lease
from pingu.domain.state import StateError

_IFNAMSIZ = 16
_MAX_ENTRIES = 256


def parse_gateways(document: object) -> dict[str, str | None]:
    """The gateways of a parsed file (None when there is none yet); StateError if unusable."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StateError("not a JSON object mapping interface names to gateways")
    if len(document) > _MAX_ENTRIES:
        raise StateError(f"more than {_MAX_ENTRIES} interfaces")
    gateways: dict[str, str | None] = {}
    for name, gateway in document.items():
        if not isinstance(name, str) or not 0 < len(name.encode()) < _IFNAMSIZ:
            raise StateError(f"{name!r:.40} is not an interface name")
        if gateway is not None:
            try:
                ipaddress.IPv4Address(gateway if isinstance(gateway, str) else "")
            except ValueError:
                raise StateError(f"{name}: {gateway!r:.40} is not an IPv4 address") from None
        gateways[name] = gateway
    return gateways


def gateways_document(leases: Mapping[str, Lease | None]) -> dict[str, object]:
    """The file's content for the uplinks whose gateway pingu knows."""
    return {name: lease.gateway for name, lease in leases.items() if lease is not None}


def describe_gateways(gateways: Mapping[str, str | None]) -> str:
    """`eno2 192.0.2.1, ppp0 none (point-to-point)`, for the log and check-config."""
    parts = [f"{name} {gateway or 'none (point-to-point)'}" for name, gateway in gateways.items()]
    return ", ".join(parts) or "no gateway"
