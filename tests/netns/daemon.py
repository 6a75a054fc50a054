"""The real pingu daemon as a process in a lab's daemon namespace, for end-to-end tests:
start it with a config dict, read its log, wait for log lines and routes (always bounded),
signal and stop it; on teardown it is always stopped (killed if it must be) and its log
printed, so that a failing test shows what the daemon decided.

    with Daemons(tmp_path) as daemons:
        pingu = daemons.start(lab, {"host": lab.targets[0], "interfaces": {...}})
        pingu.until(lambda: "wan1" in pingu.own_routes(), "wan1's route installed")
        assert pingu.stop() == 0
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from pingu.lab import Lab
from pingu.lab.lab import IPVersion

PROTO = 136
WAIT_S = 15.0
POLL_S = 0.02
DUPLICATE_LOOKS = 5  # a move takes well under a millisecond; 5 looks 20 ms apart
STOP_S = 15.0

Pattern = str | re.Pattern[str]
_HEALTH = "up|failing|down|rising"
# An uplink as the log names it: `wan1`, or `wan1/ipv6` (a path of a dual-stack uplink).
_UPLINK = r"(?P<uplink>[\w.-]+(?:/ipv[46])?)"
JUDGED = re.compile(rf" {_UPLINK}: round (?P<outcome>passed|failed): (?P<reason>.*)$")
STATE = re.compile(rf" {_UPLINK} (?P<old>{_HEALTH}) -> (?P<new>{_HEALTH}): (?P<reason>.*)$")


def until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds saying ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(POLL_S)


def write_script(path: Path, text: str) -> str:
    """An operator's script at ``path``: mode 0755 (pingu refuses group/world-writable
    scripts); returns its absolute path for the config."""
    path.write_text(text)
    path.chmod(0o755)
    return str(path.resolve())


class RunningDaemon:
    """One `pingu run --config FILE` process in ``lab``'s daemon namespace."""

    def __init__(
        self,
        lab: Lab,
        config: Mapping[str, Any],
        workdir: Path,
        name: str = "pingu",
        *,
        verbose: bool = False,
        wrapper: Sequence[str] = (),
    ) -> None:
        self.lab = lab
        self.name = name
        self.config: dict[str, Any] = dict(config)
        # Never the defaults under /var/lib and /run: each test has its own.
        self.config.setdefault("state_file", str(workdir / "state.json"))
        self.config.setdefault("control_socket", str(workdir / "control.sock"))
        self.proto = int(self.config.get("proto", PROTO))
        self.config_path = workdir / f"{name}.json"
        self.log_path = workdir / f"{name}.log"
        self.write_config(self.config)
        self._log: TextIO = self.log_path.open("w")
        # `wrapper` (e.g. setpriv ...) must exec the daemon, so that its pid is pingu's.
        argv = [*wrapper, sys.executable, "-m", "pingu", "run", "--config", str(self.config_path)]
        self.process: subprocess.Popen[str] = lab.popen_in_daemon(
            [*argv, *(["-v"] if verbose else [])],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._closed = False

    # -- configuration --------------------------------------------------------------------

    def write_config(self, config: Mapping[str, Any]) -> None:
        """(Re)write the config file, e.g. before a SIGHUP; the daemon reads it itself."""
        self.config_path.write_text(json.dumps(config, indent=2))

    # -- the log --------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()

    def mark(self) -> int:
        """The number of log lines so far: pass it as ``after`` to look only at what follows."""
        return len(self.log_lines())

    def find_log(self, pattern: Pattern, *, after: int = 0) -> list[re.Match[str]]:
        """Every line from line ``after`` on where ``pattern`` is found (re.search)."""
        regex = re.compile(pattern)
        return [m for line in self.log_lines()[after:] if (m := regex.search(line))]

    def wait_log(
        self, pattern: Pattern, timeout: float = WAIT_S, *, after: int = 0, count: int = 1
    ) -> re.Match[str]:
        """Wait for the ``count``-th line from line ``after`` on matching ``pattern``; return
        its match. Fails at once if the daemon exits meanwhile."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = self.find_log(pattern, after=after)
            return len(found) >= count

        what = f"{count} log line(s) matching {str(getattr(pattern, 'pattern', pattern))!r}"
        self.until(seen, what, timeout)
        return found[count - 1]

    def wait_ready(self, timeout: float = WAIT_S) -> None:
        """Until the daemon has captured the table it found and would tell systemd READY=1
        (its `ready:` log line): before it, a change to the table may be seen by the
        start-up dump or by an event, and a test cannot know which."""
        self.wait_log(r" INFO ready: ", timeout)

    def decisions(self, uplink: str, *, after: int = 0) -> list[str]:
        """``uplink``'s verdicts and health changes in log order: "passed" (logged with -v
        only), "failed", "up -> failing", ... (``wan1/ipv6``: of one family of a dual-stack
        uplink)."""
        found = []
        for line in self.log_lines()[after:]:
            if (judged := JUDGED.search(line)) and judged["uplink"] == uplink:
                found.append(judged["outcome"])
            elif (state := STATE.search(line)) and state["uplink"] == uplink:
                found.append(f"{state['old']} -> {state['new']}")
        return found

    # -- the table ------------------------------------------------------------------------

    def own_routes(self, family: IPVersion = 4) -> dict[str, tuple[str | None, int]]:
        """uplink -> (gateway, metric) of pingu's default routes in table main, of one family
        (IPv4 unless told). An uplink with two of them fails the test: pingu must never leave
        duplicates. A look may fall in the instant of a move, between the new route's
        arrival and the old one's removal (make before break): the table is read again, and
        two routes that stay are a defect."""
        for _ in range(DUPLICATE_LOOKS):
            routes, duplicate = self._own_routes_once(family)
            if duplicate is None:
                return routes
            time.sleep(POLL_S)
        raise AssertionError(f"two pingu routes stayed on {duplicate}: {routes}")

    def _own_routes_once(
        self, family: IPVersion
    ) -> tuple[dict[str, tuple[str | None, int]], str | None]:
        routes: dict[str, tuple[str | None, int]] = {}
        for route in self.lab.default_routes(family=family):
            if route.proto == self.proto:
                uplink = str(route.oif)
                if uplink in routes:
                    return routes, f"{uplink} ({route.gateway}, {route.metric})"
                routes[uplink] = (route.gateway, route.metric)
        return routes, None

    # -- waiting --------------------------------------------------------------------------

    def until(self, check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        """Like :func:`until`, but fails at once, with the reason, if the daemon exited."""

        def alive_and_checked() -> bool:
            if check():
                return True
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} while waiting for: {what}"
                )
            return False

        until(alive_and_checked, what, timeout)

    # -- signals and stopping -------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon (``ip netns exec`` execs it: same pid)."""
        if self.running():
            self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_S) -> int:
        """Send ``signum`` and wait for the exit; return the exit code (negative: the signal
        that killed it, e.g. -9 after SIGKILL). Fails if it does not exit within ``timeout``."""
        self.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_S)
            message = f"{self.name} did not exit within {timeout} s of signal {signum}"
            raise AssertionError(message) from None

    def kill(self) -> int:
        """``kill -9``: no clean-up at all; returns -9."""
        return self.stop(signal.SIGKILL)

    def close(self) -> None:
        """Stop the daemon if it still runs (SIGTERM, then SIGKILL), print its log (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.running():
                self.process.terminate()
                try:
                    self.process.wait(STOP_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(STOP_S)
        finally:
            self._log.close()
            print(f"----- {self.name} log (exit {self.process.returncode}) -----")
            print(self.log_text())


class Daemons:
    """The daemons of one test: each in its own files under ``workdir``; all stopped, and
    their logs printed, when the block ends (even on failure). Use it inside the lab's
    block (or with the ``lab_factory`` fixture), so that daemons stop before the lab goes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[RunningDaemon] = []

    def start(
        self,
        lab: Lab,
        config: Mapping[str, Any],
        *,
        verbose: bool = False,
        name: str | None = None,
        wrapper: Sequence[str] = (),
    ) -> RunningDaemon:
        """Start pingu in ``lab`` with ``config`` (``state_file`` and ``control_socket`` are
        put in ``workdir`` unless given: pass ``daemon.config`` again to restart on the same
        state). ``verbose`` adds ``-v`` (passed rounds and every event are logged);
        ``wrapper`` is a command that execs the daemon (``setpriv ... --``)."""
        name = name or f"pingu-{len(self.started) + 1}"
        daemon = RunningDaemon(lab, config, self.workdir, name, verbose=verbose, wrapper=wrapper)
        self.started.append(daemon)
        return daemon

    def close(self) -> None:
        problems: list[BaseException] = []
        for daemon in reversed(self.started):
            try:
                daemon.close()
            except Exception as error:
                problems.append(error)
        if problems:
            raise problems[0]

    def __enter__(self) -> Daemons:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
