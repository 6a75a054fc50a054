"""The simulated network pingu is tested in: namespaces, uplinks, ISPs, impairments."""

from pingu.lab.errors import LabError
from pingu.lab.lab import Lab, Nexthop, ReceivedEcho, Route, Uplink, prefixes_used
from pingu.lab.ping import PingResult

__all__ = [
    "Lab",
    "LabError",
    "Nexthop",
    "PingResult",
    "ReceivedEcho",
    "Route",
    "Uplink",
    "prefixes_used",
]
