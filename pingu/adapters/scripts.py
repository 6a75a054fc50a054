"""The script runner port: operators' scripts, without a shell, bounded by a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex

from pingu.domain.commands import RunScript

log = logging.getLogger(__name__)

KILL_GRACE_S = 5.0
OUTPUT_LIMIT = 64 * 1024


class SubprocessScriptRunner:
    """Runs a script as argv (no shell, no interpolation), logs its output, kills it on timeout.

    The timeout is the command's (`script_timeout`), unless `timeout_s` overrides it.
    """

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s

    async def run(self, script: RunScript) -> int | None:
        """The exit status, or None when it could not start or was killed at its timeout."""
        env = {**os.environ, **dict(script.env)}
        try:
            process = await asyncio.create_subprocess_exec(
                *script.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            log.error("%s: cannot start %s: %s", script.uplink, script.script, error)
            return None
        log.info(
            "%s: started %s script %s (pid %d): %s",
            script.uplink,
            script.kind,
            shlex.join(script.argv) if script.args else script.script,
            process.pid,
            script.reason,
        )
        timeout = self.timeout_s if self.timeout_s is not None else script.timeout_s
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            log.error(
                "%s: %s still running after %g s: killed", script.uplink, script.script, timeout
            )
            await self._kill(process)
            return None
        except asyncio.CancelledError:
            await self._kill(process)
            raise
        self._log_output(script, output)
        level = logging.INFO if process.returncode == 0 else logging.WARNING
        log.log(
            level, "%s: %s exited with status %s", script.uplink, script.script, process.returncode
        )
        return process.returncode

    @staticmethod
    async def _kill(process: asyncio.subprocess.Process) -> None:
        """Kill the script's whole process group, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(process.wait(), KILL_GRACE_S)

    @staticmethod
    def _log_output(script: RunScript, output: bytes | None) -> None:
        text = (output or b"")[:OUTPUT_LIMIT].decode(errors="replace")
        for line in text.splitlines():
            log.info("%s: %s: %s", script.uplink, os.path.basename(script.script), line)
