"""A real headless Chromium (Debian's `chromium`), driven over the DevTools protocol on a
pipe (`--remote-debugging-pipe`: JSON messages ended by NUL on file descriptors 3 and 4),
so no WebSocket client nor browser driver is needed.

It runs inside a lab namespace (`ip netns exec`), with a private HOME and profile in a
temporary directory that is removed at close; every exchange has a deadline; close asks
the browser to quit, then terminates and at last kills its process group.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

from pingu.lab import Lab, _process

CHROMIUM = "chromium"
COMMAND_S = 20.0  # one DevTools exchange (a navigation, a screenshot) on two shared cores
START_S = 30.0
CLOSE_S = 10.0
MESSAGE_LIMIT = 64 * 1024 * 1024  # a screenshot is a few hundred kB of base64
FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",  # root: Chromium's sandbox refuses to run as root
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
)


class BrowserError(Exception):
    """The browser did not answer as expected (or in time)."""


class Browser:
    """One Chromium with one page, in the lab's daemon namespace."""

    def __init__(self, lab: Lab, *, width: int = 1100, height: int = 700) -> None:
        if shutil.which(CHROMIUM) is None:
            raise BrowserError(
                f"{CHROMIUM} not found: scripts/test-all installs Debian's chromium package"
            )
        self._dir = tempfile.mkdtemp(prefix="pingu-chromium-")
        self.events: list[dict[str, Any]] = []  # every DevTools event seen, in order
        self._next_id = 0
        self._buffer = b""
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        argv = [
            "ip", "netns", "exec", lab.daemon_ns,
            "env", f"HOME={self._dir}", "XDG_CONFIG_HOME=" + os.path.join(self._dir, "config"),
            "XDG_CACHE_HOME=" + os.path.join(self._dir, "cache"),
            CHROMIUM, *FLAGS,
            f"--user-data-dir={os.path.join(self._dir, 'profile')}",
            f"--window-size={width},{height}",
            "about:blank",
        ]  # fmt: skip
        self.log_path = os.path.join(self._dir, "chromium.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in close())
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # fd 3: what the browser reads; fd 4: what it writes
                pass_fds=(3, 4),
                preexec_fn=_dup_to(to_browser_r, from_browser_w),  # noqa: PLW1509
                start_new_session=True,  # its own process group, killed at close
                env=_process.helper_env(),
            )
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        self.session: str | None = None
        try:
            self._attach()
        except BaseException:
            self.close()
            raise

    def _attach(self) -> None:
        deadline = time.monotonic() + START_S
        targets = self.call("Target.getTargets", deadline=deadline)["targetInfos"]
        page = next((t for t in targets if t.get("type") == "page"), None)
        if page is None:
            page = {"targetId": self.call("Target.createTarget", {"url": "about:blank"})}
        attached = self.call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
        )
        self.session = attached["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    # -- the protocol -------------------------------------------------------------------

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Send a command (to the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        deadline = time.monotonic() + COMMAND_S if deadline is None else deadline
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result") or {}
                return result
            if "method" in reply:
                self.events.append(reply)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from chromium in time (log: {self._log_tail()})")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed its pipe (log: {self._log_tail()})")
            self._buffer += chunk
            if len(self._buffer) > MESSAGE_LIMIT:
                raise BrowserError("a DevTools message larger than the limit")
        message, self._buffer = self._buffer.split(b"\0", 1)
        loaded: dict[str, Any] = json.loads(message)
        return loaded

    def pump(self, seconds: float) -> None:
        """Collect the events the browser sends for `seconds` (the page reloading itself)."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(BrowserError):
            while time.monotonic() < deadline:
                self.events.append(self._receive(deadline))

    # -- what a test does with the page -------------------------------------------------

    def loads(self) -> int:
        """How many times a document finished loading in the page so far."""
        return sum(1 for e in self.events if e.get("method") == "Page.loadEventFired")

    def open(self, url: str) -> None:
        """Navigate to `url` and wait until it has loaded."""
        before = self.loads()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self.wait_load(before, COMMAND_S)

    def wait_load(self, after: int, timeout: float) -> None:
        """Wait until more than `after` loads have finished (bounded)."""
        deadline = time.monotonic() + timeout
        while self.loads() <= after:
            if time.monotonic() >= deadline:
                raise BrowserError(f"no page load within {timeout:.0f} s")
            self.events.append(self._receive(deadline))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools', not the page's)."""
        done = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in done:
            raise BrowserError(f"{expression}: {done['exceptionDetails']}")
        return done.get("result", {}).get("value")

    def dom(self) -> str:
        """The page's DOM as it is now, serialised (what `chromium --dump-dom` prints)."""
        value = self.evaluate("document.documentElement.outerHTML")
        if not isinstance(value, str):
            raise BrowserError(f"no DOM: {value!r}")
        return value

    def screenshot(self) -> bytes:
        done = self.call("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(done["data"])

    # -- the end -----------------------------------------------------------------------

    def close(self) -> None:
        """Quit the browser (politely, then not), close the pipes, remove the profile."""
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            self.session = None
            with contextlib.suppress(BrowserError, OSError):
                self.call("Browser.close", deadline=time.monotonic() + CLOSE_S)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    process.wait(CLOSE_S)
                    break
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(CLOSE_S)
        if process is not None:  # what the browser left in its group (zygotes, helpers)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _log_tail(self) -> str:
        self._log.flush()
        try:
            with open(self.log_path, "rb") as log:
                return log.read()[-2000:].decode(errors="replace")
        except OSError:
            return "-"


def _dup_to(reads: int, writes: int) -> Any:
    """In the child before exec: the browser's end of each pipe on fd 3 and fd 4."""

    def arrange() -> None:
        # dup first (3 and 4 may be among the pipe's own numbers), then put in place
        r, w = os.dup(reads), os.dup(writes)
        os.dup2(r, 3)
        os.dup2(w, 4)
        os.set_inheritable(3, True)
        os.set_inheritable(4, True)

    return arrange
