"""The ports: what the core's shell needs from the outside world, as structural Protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from pingu.domain.commands import RunScript, StartProbe
from pingu.domain.events import Event
from pingu.domain.model import RoundResult, Route


class Clock(Protocol):
    """Monotonic time in seconds."""

    def monotonic(self) -> float: ...


class RouteTable(Protocol):
    """The kernel's routing table, as pingu is allowed to touch it."""

    async def snapshot(self) -> list[Event]:
        """The links and IPv4 default routes of table main, as events."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """Route and link changes as they happen (with a resync after an overflow)."""
        ...

    async def install(self, route: Route) -> None: ...

    async def remove(self, route: Route) -> None: ...

    async def delete_foreign(self, route: Route) -> None: ...


class Prober(Protocol):
    """Sends one round of echoes through a chosen gateway."""

    async def run_round(self, probe: StartProbe) -> RoundResult: ...


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
