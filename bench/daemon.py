"""The real pingu process in a lab's daemon namespace: its configuration, start, stop and
log, as the bench needs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.model import Profile
from bench.netlink import Monitor
from pingu.lab import Lab
from pingu.lab.lab import IPVersion

PROTO = 136
STOP_TIMEOUT_S = 10.0
DHCP_METRIC_BASE = 1000
RA_METRIC_BASE = 1000  # the RA routes' metrics: one of its own per uplink (as `ip` needs)
RA_LIFETIME_S = 1800  # radvd's default router lifetime


def private_paths(workdir: Path) -> dict[str, str]:
    """``state_file`` and ``control_socket`` inside ``workdir``: a benchmark daemon never
    touches the machine's /var/lib or /run, nor another benchmark daemon's files."""
    workdir.mkdir(parents=True, exist_ok=True)
    return {
        "state_file": str(workdir / "state.json"),
        "control_socket": str(workdir / "control.sock"),
    }


def uplink_metric(index: int) -> int:
    """pingu's metric for the index-th uplink (1-based)."""
    return 100 * index


def config_for(
    lab: Lab,
    profile: Profile,
    workdir: Path,
    *,
    uplinks: list[str] | None = None,
    ipv6: bool = False,
    **top: Any,
) -> dict[str, Any]:
    """A configuration for ``uplinks`` (default: all the lab's) with ``profile``; ``ipv6``:
    a target of each family, so that every uplink is managed in both."""
    names = list(lab.uplinks) if uplinks is None else uplinks
    interfaces = {
        name: {"metric": uplink_metric(i), **profile.settings()}
        for i, name in enumerate(names, start=1)
    }
    host: str | list[str] = [lab.targets[0], lab.targets6[0]] if ipv6 else lab.targets[0]
    return {"host": host, **top, "interfaces": interfaces, **private_paths(workdir)}


def lease_all(lab: Lab, *, ipv6: bool = False) -> None:
    """Every uplink gets the default route a DHCP client would install; ``ipv6``: and the
    one the kernel installs for its router's advertisement (proto ra, with a lifetime)."""
    for i, name in enumerate(lab.uplinks, start=1):
        lab.dhcp_add(name, metric=DHCP_METRIC_BASE + i)
        if ipv6:
            lab.ra_add(name, metric=RA_METRIC_BASE + i, expires=RA_LIFETIME_S)


class Pingu:
    """One ``python -m pingu run`` in ``lab``'s daemon namespace, logging to a file."""

    def __init__(self, lab: Lab, workdir: Path, config: dict[str, Any], name: str = "pingu"):
        self.lab = lab
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the daemon; returns the monotonic time just before the fork."""
        argv = [sys.executable, "-m", "pingu", "run", "--config", str(self.config_path)]
        with self.log_path.open("ab") as log:
            started = time.monotonic()
            # `ip netns exec` execs in place: the pid is the daemon's own.
            self.process = self.lab.popen_in_daemon(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        return started

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("pingu was not started")
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within the bound; its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def count_in_log(self, text: str) -> int:
        return self.log().count(text)


def own_routes_in_place(
    lab: Lab, monitor: Monitor, timeout: float, family: IPVersion = 4
) -> float | None:
    """Wait until pingu's route of ``family`` is in table main for every uplink of ``lab``
    and no captured route is left; the time that became true, or None. (For IPv6 the
    monitor must follow IPv6 routes, and have been seeded with the table.)"""
    wanted = {lab.ifindex(name) for name in lab.uplinks}

    def ready(keys: set[tuple[int | None, str | None, int, int]]) -> bool:
        owned = {oif for oif, _gw, _metric, proto in keys if proto == PROTO}
        foreign = [k for k in keys if k[3] != PROTO and k[0] in wanted]
        return owned >= wanted and not foreign

    return monitor.wait_state(ready, timeout, family)


def seed_monitor(lab: Lab, monitor: Monitor, family: IPVersion = 4) -> None:
    """Give the monitor's default-route replay of ``family`` the table as it is now."""
    keys = [
        (lab.ifindex(str(r.oif)) if r.oif else None, r.gateway, r.metric, r.proto)
        for r in lab.default_routes(family=family)
    ]
    monitor.seed_defaults(keys, family)
