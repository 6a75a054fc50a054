"""What the control-socket and metrics tests share: a status document shaped like the
daemon's, and an event loop on a thread of its own to serve it while the test blocks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
WAIT_S = 10.0


def _target(
    address: str, sent: int, lost: int, avg_ms: float | None, max_ms: float | None
) -> dict[str, Any]:
    return {"address": address, "sent": sent, "lost": lost, "avg_ms": avg_ms, "max_ms": max_ms}


_STATUS: dict[str, Any] = {
    "status_version": 1,
    "version": "0.1.0",
    "pid": 4242,
    "started_at": "2026-01-01T00:00:00+00:00",
    "uptime_s": 3725.5,
    "proto": 136,
    "on_exit": "restore",
    "when_all_down": "none",
    "all_down": False,
    "last_resort": None,
    "uplinks": [
        {
            "name": "wan1",
            "state": "down",
            "since": "2026-01-01T01:01:53+00:00",
            "since_s": 12.5,
            "why": "round failed: 5/5 lost via 192.0.2.1 (max_lost 2)",
            "link": {
                "present": True,
                "carrier": True,
                "admin_up": True,
                "point_to_point": False,
                "address": "192.0.2.2",
            },
            "gateway": "192.0.2.1",
            "gateway_known": True,
            "metric": 100,
            "route_installed": False,
            "last_round": {
                "at": "2026-01-01T01:02:00+00:00",
                "passed": False,
                "reason": "5/5 lost (max_lost 2)",
                "error": None,
                "targets": [_target("203.0.113.10", 5, 5, None, None)],
            },
            "round_running": False,
            "next_round_in_s": 0.4,
            "reset_script": {
                "path": "/usr/local/sbin/reset-wan1",
                "last_run": "2026-01-01T01:01:55+00:00",
                "running": False,
            },
            "counters": {
                "rounds": 40,
                "echoes_sent": 200,
                "echoes_lost": 12,
                "state_changes": 1,
                "reset_script_runs": 1,
                "route_changes": 2,
            },
        },
        {
            "name": "wan2",
            "state": "up",
            "since": "2026-01-01T00:00:01+00:00",
            "since_s": 3724.0,
            "why": "round passed: 0/5 lost, 12.0 ms average",
            "link": {
                "present": True,
                "carrier": True,
                "admin_up": True,
                "point_to_point": False,
                "address": "198.51.100.2",
            },
            "gateway": "198.51.100.1",
            "gateway_known": True,
            "metric": 200,
            "route_installed": True,
            "last_round": {
                "at": "2026-01-01T01:02:01+00:00",
                "passed": True,
                "reason": "0/5 lost, 12.0 ms average",
                "error": None,
                "targets": [
                    _target("203.0.113.10", 4, 1, 10.0, 14.0),
                    _target("203.0.113.11", 4, 3, 30.0, 30.0),
                ],
            },
            "round_running": True,
            "next_round_in_s": None,
            "reset_script": {"path": None, "last_run": None, "running": False},
            "counters": {
                "rounds": 41,
                "echoes_sent": 328,
                "echoes_lost": 4,
                "state_changes": 0,
                "reset_script_runs": 0,
                "route_changes": 1,
            },
        },
        {
            "name": "ppp0",
            "state": "rising",
            "since": "2026-01-01T01:01:59+00:00",
            "since_s": 2.0,
            "why": "carrier back",
            "link": {
                "present": True,
                "carrier": False,
                "admin_up": True,
                "point_to_point": True,
                "address": "100.64.0.2",
            },
            "gateway": None,
            "gateway_known": True,
            "metric": 300,
            "route_installed": False,
            "last_round": None,
            "round_running": False,
            "next_round_in_s": 65.0,
            "reset_script": {"path": None, "last_run": None, "running": False},
            "counters": {
                "rounds": 0,
                "echoes_sent": 0,
                "echoes_lost": 0,
                "state_changes": 0,
                "reset_script_runs": 0,
                "route_changes": 0,
            },
        },
    ],
}


def status_document() -> dict[str, Any]:
    """A fresh copy of a status document with a down, an up and a rising uplink."""
    return copy.deepcopy(_STATUS)


class LoopThread:
    """An asyncio loop running on a thread of its own, so that servers keep answering
    while the test calls blocking clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop")

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.run(_cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_S)
        self.loop.close()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result(WAIT_S)


async def _cancel_the_rest() -> None:
    """Cancel and await what is still pending (a scrape's fetch given up on, a client)."""
    await asyncio.sleep(0)  # tasks whose creation is already queued come into being
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
