"""The composition root: which adapter plays which port, in production."""

from __future__ import annotations

from dependency_injector import containers, providers

from pingu.adapters.clock import MonotonicClock
from pingu.adapters.netlink import NetlinkRouteTable
from pingu.adapters.scripts import SubprocessScriptRunner
from pingu.adapters.state_file import JsonStateFile
from pingu.domain.ports import Prober


def packet_prober() -> Prober:
    """The production prober (raw AF_PACKET sockets, kernel-side BPF), built on first use."""
    from pingu.adapters.prober import PacketProber  # noqa: PLC0415

    prober: Prober = PacketProber()
    return prober


class Adapters(containers.DeclarativeContainer):
    """Production adapters; tests override single providers with fakes."""

    clock = providers.Singleton(MonotonicClock)
    route_table = providers.Singleton(NetlinkRouteTable)
    prober = providers.Singleton(packet_prober)
    scripts = providers.Singleton(SubprocessScriptRunner)
    state_store = providers.Factory(JsonStateFile)
