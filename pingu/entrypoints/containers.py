"""The composition root: which adapter plays which port, who builds the daemon, and who
opens and closes the adapters.

dependency-injector's containers do it (as in its `asyncio-daemon` example): `Adapters`
holds the production adapters, the netlink socket and the prober as resources that are
opened before the daemon starts and closed after it stops, whatever happened; `Application`
builds the daemon from them and the configuration. Tests override single providers with
fakes, or put a container of fakes of the same provider names in `Adapters`' place.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

from dependency_injector import containers, providers

from pingu.adapters.clock import MonotonicClock
from pingu.adapters.flows import KernelFlows
from pingu.adapters.netlink import NetlinkRouteTable
from pingu.adapters.router_adverts import RouterAdvertListener
from pingu.adapters.scripts import SubprocessScriptRunner
from pingu.adapters.state_file import JsonStateFile, boot_id
from pingu.adapters.systemd import Notifier
from pingu.domain.config import Config
from pingu.domain.ports import Prober
from pingu.entrypoints.operations import operations
from pingu.entrypoints.runtime import Daemon

log = logging.getLogger("pingu")


async def netlink_route_table() -> AsyncIterator[NetlinkRouteTable]:
    """The route table port on rtnetlink; its request socket is closed at the end."""
    table = NetlinkRouteTable()
    try:
        yield table
    finally:
        await table.close()


def packet_prober() -> Iterator[Prober]:
    """The production prober (raw AF_PACKET sockets, kernel-side BPF), imported on first use."""
    from pingu.adapters.prober import PacketProber  # noqa: PLC0415 (its imports cost start-up)

    prober = PacketProber()
    try:
        yield prober
    finally:
        prober.close()


def state_store(path: str | None) -> JsonStateFile | None:
    """The store of a file setting, or None when the setting is null."""
    return JsonStateFile(path) if path is not None else None


class Adapters(containers.DeclarativeContainer):
    """Production adapters; tests override single providers, or the whole container."""

    clock = providers.Singleton(MonotonicClock)
    route_table = providers.Resource(netlink_route_table)
    prober = providers.Resource(packet_prober)
    scripts = providers.Singleton(SubprocessScriptRunner)
    router_adverts = providers.Singleton(RouterAdvertListener)
    flows = providers.Singleton(KernelFlows)
    state_store = providers.Factory(state_store)


class Application(containers.DeclarativeContainer):
    """The daemon built from a configuration and the adapters."""

    config = providers.Dependency(instance_of=Config)
    config_path: providers.Object[str | None] = providers.Object(None)
    adapters = providers.Container(Adapters)
    # Taken out of the environment: scripts must not speak to systemd in pingu's name.
    notifier = providers.Singleton(Notifier.from_environment, unset=True)
    daemon = providers.Singleton(
        Daemon,
        config=config,
        route_table=adapters.route_table,
        prober=adapters.prober,
        scripts=adapters.scripts,
        clock=adapters.clock,
        state_store=providers.Callable(adapters.state_store, config.provided.state_file),
        gateways_store=providers.Callable(adapters.state_store, config.provided.gateways_file),
        config_path=config_path,
        boot=providers.Callable(boot_id),
        notifier=notifier,
        router_adverts=adapters.router_adverts,
        flows=adapters.flows,
    )


async def serve(
    config: Config, adapters: containers.Container | None = None, config_path: str | None = None
) -> None:
    """Run the daemon until SIGTERM or SIGINT, with the production adapters or `adapters`;
    they are opened first and closed last, even when start-up is refused."""
    app = Application(config=config, config_path=config_path)
    if adapters is not None:
        app.adapters.override(adapters)
    await settled(app.init_resources())
    try:
        daemon: Daemon = await settled(app.daemon())
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.request_stop)
        loop.add_signal_handler(signal.SIGUSR1, daemon.log_state)
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
        log.info(
            "pingu started: %d uplinks (%s), proto %d, on_exit %s, when_all_down %s",
            len(config.uplinks),
            ", ".join(u.name for u in config.uplinks),
            config.proto,
            config.on_exit.value,
            config.when_all_down.value,
        )
        async with operations(config, daemon.status):  # control socket, metrics
            await daemon.run()
    finally:
        await settled(app.shutdown_resources())


async def settled(result: Any) -> Any:
    """What a provider gives: awaited when one of its resources is asynchronous."""
    return await result if inspect.isawaitable(result) else result
