"""The simulated network pingu is tested in: namespaces, uplinks, ISPs, impairments."""

from pingu.lab.errors import LabError
from pingu.lab.lab import Lab, ReceivedEcho, Route, Uplink, prefixes_used
from pingu.lab.ping import PingResult

__all__ = ["Lab", "LabError", "PingResult", "ReceivedEcho", "Route", "Uplink", "prefixes_used"]
