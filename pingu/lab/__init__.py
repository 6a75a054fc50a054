"""The simulated network pingu is tested in: namespaces, uplinks, ISPs, impairments."""

from pingu.lab.clients import (
    ClientRoute,
    DhcpcdClient,
    DnsmasqServer,
    KernelRA,
    RadvdServer,
    Sandbox,
    UdhcpcClient,
)
from pingu.lab.errors import LabError
from pingu.lab.lab import Lab, Nexthop, ReceivedEcho, Route, Uplink, prefixes_used
from pingu.lab.ping import PingResult

__all__ = [
    "ClientRoute",
    "DhcpcdClient",
    "DnsmasqServer",
    "KernelRA",
    "Lab",
    "LabError",
    "Nexthop",
    "PingResult",
    "RadvdServer",
    "ReceivedEcho",
    "Route",
    "Sandbox",
    "UdhcpcClient",
    "Uplink",
    "prefixes_used",
]
