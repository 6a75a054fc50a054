"""The operator's windows on a running daemon: the control socket and the metrics endpoint."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from pingu.adapters.control import ControlServer, ControlSocketError
from pingu.adapters.metrics import MetricsError, MetricsServer
from pingu.domain.config import Config
from pingu.domain.errors import PinguError
from pingu.entrypoints.status_page import page

log = logging.getLogger("pingu")


class StartupError(PinguError):
    """The daemon cannot start as configured; it exits before touching any route."""


@contextlib.asynccontextmanager
async def operations(
    config: Config, status: Callable[[], Mapping[str, Any]]
) -> AsyncIterator[None]:
    """Serve the control socket and the metrics (each when configured) for the block's
    duration. Both start before any route is touched: a daemon that cannot be watched as
    configured (another pingu on the socket, the metrics port taken) refuses to start
    rather than run blind or fight the other pingu for the table."""
    async with contextlib.AsyncExitStack() as stack:
        if config.control_socket is not None:
            control = ControlServer(config.control_socket, status, config.control_group)
            try:
                await control.start()
            except ControlSocketError as error:
                raise StartupError(str(error)) from None
            stack.push_async_callback(_closing, "control socket", control.close)
        if config.metrics is not None:
            host, port = config.metrics
            metrics = MetricsServer(host, port, status, page)
            try:
                metrics.start()
            except MetricsError as error:
                raise StartupError(str(error)) from None
            stack.push_async_callback(_closing, "metrics", metrics.close)
        yield


async def _closing(what: str, close: Callable[[], Any]) -> None:
    try:
        await close()
    except Exception:
        log.exception("%s: could not close it cleanly", what)
