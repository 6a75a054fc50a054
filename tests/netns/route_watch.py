"""Every change of table main's default routes of one family (IPv4 unless told) in a lab's
daemon namespace, in the kernel's own order, replayed into the sequence of tables the box
went through: a gap of a few microseconds between a route's removal and another's addition
shows, where sampling `ip route` would miss it.

    with DefaultRouteWatch(lab) as watch:          # DefaultRouteWatch(lab, family=6)
        ... make the daemon fail over ...
        assert all(table for table in watch.tables())
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import time
from dataclasses import dataclass
from types import TracebackType

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE

from pingu.lab import Lab
from pingu.lab.lab import IPVersion
from tests.netns.conftest import NamespaceLoop

NLM_F_REPLACE = 0x100
MAIN = 254
FAMILIES = {4: (socket.AF_INET, RTMGRP_IPV4_ROUTE), 6: (socket.AF_INET6, RTMGRP_IPV6_ROUTE)}


@dataclass(frozen=True)
class Seen:
    """One default route as the kernel reported it."""

    oif: int
    gateway: str | None
    metric: int
    proto: int
    tos: int

    @property
    def slot(self) -> tuple[int, int]:
        return (self.tos, self.metric)


def _seen(msg: object, family: int) -> Seen | None:
    get = msg.get  # type: ignore[attr-defined]
    if get("family") != family or get("dst_len") != 0 or get("table") != MAIN:
        return None
    return Seen(
        int(get("oif") or 0),
        get("gateway"),
        int(get("priority") or 0),
        int(get("proto") or 0),
        int(get("tos") or 0),
    )


class DefaultRouteWatch:
    """Records default-route notifications from its start (after a dump) to its end."""

    def __init__(self, lab: Lab, family: IPVersion = 4) -> None:
        self._family, self._groups = FAMILIES[family]
        self._loop = NamespaceLoop(lab.daemon_ns)
        self.initial: frozenset[Seen] = frozenset()
        self.changes: list[tuple[str, Seen, bool]] = []  # (event, route, replaced)
        self._task: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> DefaultRouteWatch:
        self._loop.__enter__()
        ready = self._loop.start(self._subscribe())
        ready.result(10)
        self._task = self._loop.start(self._follow())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._stop is not None:
                self._loop.loop.call_soon_threadsafe(self._stop.set)
            if self._task is not None:
                self._task.result(10)
        finally:
            self._loop.__exit__(exc_type, exc, tb)

    async def _subscribe(self) -> None:
        self._stop = asyncio.Event()
        self._monitor = AsyncIPRoute()
        await self._monitor.bind(groups=self._groups)
        async with AsyncIPRoute() as dump:  # subscribed first: nothing falls in between
            routes = [r async for r in await dump.route("dump", family=self._family)]
        self.initial = frozenset(s for r in routes if (s := _seen(r, self._family)) is not None)

    async def _follow(self) -> None:
        assert self._stop is not None
        stopping = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                receiving = asyncio.ensure_future(self._receive())
                done, _ = await asyncio.wait(
                    {receiving, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiving not in done:
                    receiving.cancel()
                    break
        finally:
            self._monitor.close()

    async def _receive(self) -> None:
        async for msg in self._monitor.get():
            seen = _seen(msg, self._family)
            if seen is None:
                continue
            replaced = bool(msg["header"]["flags"] & NLM_F_REPLACE)
            self.changes.append((str(msg.get("event")), seen, replaced))

    def settle(self, quiet_s: float = 0.3) -> None:
        """Wait (bounded) until no change came for `quiet_s` seconds."""
        deadline = time.monotonic() + 15
        count = -1
        while time.monotonic() < deadline:
            if len(self.changes) == count:
                return
            count = len(self.changes)
            time.sleep(quiet_s)

    def tables(self) -> list[frozenset[Seen]]:
        """The table after its initial state and after each change, in order."""
        table = set(self.initial)
        tables = [frozenset(table)]
        for event, seen, replaced in list(self.changes):
            if event == "RTM_NEWROUTE":
                if replaced:
                    table -= {r for r in table if r.slot == seen.slot}
                table.add(seen)
            else:
                table.discard(seen)
            tables.append(frozenset(table))
        return tables
