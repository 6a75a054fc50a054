"""The script runner port: operators' scripts, without a shell, bounded by a timeout.

Scripts run as root, so each run checks the script again (safe_files' rule: root's, and
nobody else can write to it or to any directory on its way) and then executes the very
file it checked, through a descriptor opened at the check: one replaced a moment later
is not the one that runs. A script has ended when its process has exited: its output is
read as it comes, only the first OUTPUT_LIMIT bytes are kept for the log, and a
background child still holding the output pipe holds neither the runner nor a
descriptor once the script itself is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import subprocess
from types import TracebackType

from pingu.adapters.safe_files import (
    UntrustedPath,
    check_executable,
    file_problem,
    same_file,
)
from pingu.domain.commands import (
    RunScript,
)

log = logging.getLogger(__name__)

KILL_GRACE_S = 5.0
OUTPUT_LIMIT = 64 * 1024
_CHUNK = 64 * 1024
# What is still in the pipe when the script exits is read, up to this much: a background
# child that keeps writing is not followed.
_DRAIN_LIMIT = 1024 * 1024


class CheckedScript:
    """A script that passed the check, held open (O_PATH) so that exactly it is run."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: str) -> CheckedScript:
        """Check the script at `path` and hold it; UntrustedPath with the reason if not."""
        found = check_executable(path)
        try:
            fd = os.open(found.path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise UntrustedPath(f"cannot be opened: {error.strerror}") from None
        info = os.fstat(fd)
        if found.info is None or not same_file(info, found.info) or file_problem(info):
            os.close(fd)
            raise UntrustedPath("changed while it was checked")
        return cls(path, fd)

    @property
    def executable(self) -> str:
        """What to execute: the held file itself, whatever is at its path by now."""
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> CheckedScript:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SubprocessScriptRunner:
    """Runs a script as argv (no shell, no interpolation), logs its output, kills it on timeout.

    The timeout is the command's (`script_timeout`), unless `timeout_s` overrides it.
    """

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s

    async def run(self, script: RunScript) -> int | None:
        """The exit status, or None when it was refused, could not start or was killed at
        its timeout."""
        try:
            checked = CheckedScript.open(script.script)
        except UntrustedPath as error:
            log.error(
                "%s: %s script %s refused, not run: %s",
                script.uplink,
                script.kind.value,
                script.script,
                error,
            )
            return None
        with checked:
            return await self.run_checked(script, checked)

    async def run_checked(self, script: RunScript, checked: CheckedScript) -> int | None:
        """Run `checked` (the file held, whatever its path holds now) for `script`."""
        env = {**os.environ, **dict(script.env), "PINGU_SCRIPT": script.script}
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            process = await asyncio.create_subprocess_exec(
                *script.argv,
                executable=checked.executable,
                pass_fds=(checked.fd,),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            os.close(read_end)
            log.error("%s: cannot start %s: %s", script.uplink, script.script, error)
            return None
        finally:
            os.close(write_end)
        log.info(
            "%s: started %s script %s (pid %d)%s: %s",
            script.uplink,
            script.kind.value,
            shlex.join(script.argv) if script.args else script.script,
            process.pid,
            "" if script.event_id is None else f" for event {script.event_id}",
            script.reason,
        )
        output = _Output(read_end)
        timeout = self.timeout_s if self.timeout_s is not None else script.timeout_s
        try:
            returncode = await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log.error(
                "%s: %s still running after %g s: killed", script.uplink, script.script, timeout
            )
            await self._kill(process)
            return None
        except asyncio.CancelledError:
            await self._kill(process)
            raise
        finally:
            output.close()
        self._log_output(script, output)
        level = logging.INFO if returncode == 0 else logging.WARNING
        log.log(level, "%s: %s exited with status %s", script.uplink, script.script, returncode)
        return returncode

    @staticmethod
    async def _kill(process: asyncio.subprocess.Process) -> None:
        """Kill the script's whole process group, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(process.wait(), KILL_GRACE_S)

    @staticmethod
    def _log_output(script: RunScript, output: _Output) -> None:
        name = os.path.basename(script.script)
        for line in output.kept.decode(errors="replace").splitlines():
            log.info("%s: %s: %s", script.uplink, name, line)
        if output.dropped:
            log.info(
                "%s: %s: (%d more bytes of output not logged)",
                script.uplink,
                name,
                output.dropped,
            )


class _Output:
    """A script's output pipe, read on the event loop as data comes: the first
    OUTPUT_LIMIT bytes are kept, the rest only counted, so memory stays bounded."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.kept = bytearray()
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)
        self._watched = True

    def _readable(self) -> None:
        if not self._read(_CHUNK * 4):
            self._unwatch()

    def _read(self, budget: int) -> bool:
        """Read up to `budget` bytes now; False once the pipe is at its end."""
        while budget > 0:
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            budget -= len(chunk)
            room = OUTPUT_LIMIT - len(self.kept)
            self.kept += chunk[:room]
            self.dropped += max(0, len(chunk) - room)
        return True

    def _unwatch(self) -> None:
        if self._watched:
            self._loop.remove_reader(self.fd)
            self._watched = False

    def close(self) -> None:
        """The script is gone: take what it left in the pipe, then let go of the pipe."""
        self._unwatch()
        if self.fd < 0:
            return
        self._read(_DRAIN_LIMIT)
        os.close(self.fd)
        self.fd = -1
