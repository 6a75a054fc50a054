"""The ports: what the core's shell needs from the outside world, as structural Protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from pingu.domain.commands import (
    EndFlows,
    RunScript,
    StartProbe,
)
from pingu.domain.events import Event, FlowsEnded, RouterAdvertised, TableSnapshot
from pingu.domain.model import RoundResult, Route


class RouteChangeFailed(Exception):
    """The route table port's error: the kernel refused a route change (the message says
    which and why)."""


class Resync:
    """From the route table's event stream: it (re)started and events may have been lost
    (an overflow): the shell reads the whole table and gives the core a TableSnapshot."""


class Clock(Protocol):
    """Monotonic time in seconds."""

    def monotonic(self) -> float: ...


class RouteTable(Protocol):
    """The kernel's routing table, as pingu is allowed to touch it."""

    async def snapshot(self, *, initial: bool = False) -> TableSnapshot:
        """The links and IPv4 default routes of table main, read in one go."""
        ...

    def events(self) -> AsyncIterator[Event | Resync]:
        """Route and link changes as they happen; Resync when a full read is needed."""
        ...

    async def install(self, route: Route) -> None: ...

    async def remove(self, route: Route) -> None: ...

    async def delete_foreign(self, route: Route) -> None: ...


class RouterAdverts(Protocol):
    """The IPv6 router advertisements arriving on the box's links."""

    def events(self) -> AsyncIterator[RouterAdvertised]:
        """Each advertisement as it comes (validated: hop limit 255, link-local source)."""
        ...


class Prober(Protocol):
    """Sends one round of echoes through a chosen gateway."""

    async def run_round(self, probe: StartProbe) -> RoundResult: ...


class Flows(Protocol):
    """The kernel's state of flows: conntrack entries and the box's own connections."""

    async def check(self) -> object:
        """Find out (once) what the kernel supports, logging what it lacks."""
        ...

    async def end(self, request: EndFlows) -> FlowsEnded:
        """End the flows of the addresses an uplink's traffic left; never raises."""
        ...


class ScriptRunner(Protocol):
    """Runs operators' scripts without a shell, bounded by a timeout."""

    async def run(self, script: RunScript) -> int | None: ...


class StateStore(Protocol):
    """Keeps what pingu learned across restarts, as one JSON document."""

    def read(self) -> object | None:
        """The saved document, None when there is none; StateError when it is unreadable."""
        ...

    def write(self, document: dict[str, object]) -> None:
        """Replace the saved document atomically (blocking: called off the event loop)."""
        ...
