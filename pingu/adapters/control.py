"""The control socket: a local Unix stream server that answers `pingu status` with JSON.

The socket is made only in a directory that passes safe_files' rule (root's, and nobody
else can write to it or above it), so no one can swap the socket for a symlink between
its creation and the chmod/chown that follow; it is bound with its final mode already
in place, handed to `control_group` before it listens, and every request is bounded in
size, time and nesting.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import stat
from collections.abc import Callable, Mapping

from pingu.adapters import json_limits
from pingu.adapters.safe_files import UntrustedPath, check_path
from pingu.domain.errors import PinguError

log = logging.getLogger(__name__)

# One request is one short JSON line; anything longer is not a pingu client.
REQUEST_LIMIT = 4096
READ_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 2.0
CLOSE_TIMEOUT_S = 2.0
MAX_CLIENTS = 32
MAX_REQUEST_DEPTH = 8
BUSY_READ_S = 1.0  # how long a turned-away client may take to send its request
DIRECTORY_MODE = 0o755  # a configured group must reach the socket; its own mode keeps others out
MAX_GID = 2**32 - 2
COMMANDS = ("status",)

StatusSource = Callable[[], Mapping[str, object]]


class ControlSocketError(PinguError):
    """The control socket cannot be set up; the daemon must not start."""


class ControlServer:
    """Serves `{"command": "status"}` -> `{"ok": true, "status": {...}}` on `path`.

    The socket is root-only (0600), or 0660 and owned by `group` when one is given.
    Every request is bounded in size and time, so a silent or hostile client only
    costs itself its connection.
    """

    def __init__(self, path: str, status: StatusSource, group: str | None = None) -> None:
        self.path = path
        self.group = group
        self._status = status
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        """Bind and listen; raise ControlSocketError with the reason when that is not safe."""
        gid = group_id(self.group) if self.group is not None else None
        try:
            check_path(self.path, follow_final=False, create_mode=DIRECTORY_MODE)
        except UntrustedPath as error:
            raise ControlSocketError(
                f"control socket {self.path}: {error}; choose a control_socket in a "
                "directory only root can write, such as /run/pingu"
            ) from None
        except OSError as error:
            parent = os.path.dirname(self.path)
            raise ControlSocketError(
                f"control socket {self.path}: cannot create {parent}: {error.strerror or error}"
            ) from None
        await self._clear_the_way()
        sock = self._bind(gid)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve_client, sock=sock, limit=REQUEST_LIMIT
            )
        except BaseException:
            sock.close()
            self._unlink()
            raise
        mode = "0660, group " + str(self.group) if gid is not None else "0600, root only"
        log.info("control socket %s listening (%s)", self.path, mode)

    async def _clear_the_way(self) -> None:
        """Remove a stale socket left by a dead pingu; refuse anything else in the way."""
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as error:
            raise ControlSocketError(f"control socket {self.path}: {error.strerror}") from None
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlSocketError(
                f"control socket {self.path}: something that is not a socket is in the way; "
                "remove it or set another control_socket"
            )
        if await _answers(self.path):
            raise ControlSocketError(
                f"another pingu is running (control socket {self.path} answers)"
            )
        log.info("control socket %s: removing the stale socket of a pingu that is gone", self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _bind(self, gid: int | None) -> socket.socket:
        """Bind with the final mode and group in place before `listen`: no client can
        connect through wider permissions, even for an instant.

        The directory passed the rule, so the path is still this socket between the bind
        and the chown/chmod (checked all the same: none of them follows a symlink)."""
        mode = 0o660 if gid is not None else 0o600
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Root-only from its creation; the group is given before the group's bits.
            old = os.umask(0o177)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old)
            info = os.lstat(self.path)
            self._inode = (info.st_dev, info.st_ino)
            _give_out(self.path, gid, mode, self._inode)
        except OSError as error:
            sock.close()
            self._unlink()
            raise ControlSocketError(
                f"control socket {self.path}: cannot bind it: {error.strerror or error}"
            ) from None
        sock.setblocking(False)
        return sock

    async def close(self) -> None:
        """Stop listening, end the clients' handlers (each returns, none is left to the
        loop's teardown), and remove the socket file (if still ours)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            handlers = list(self._handlers)
            for handler in handlers:
                handler.cancel()
            if handlers:
                await asyncio.wait(handlers, timeout=CLOSE_TIMEOUT_S)
            for writer in list(self._clients):
                writer.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT_S)
        self._unlink()

    def _unlink(self) -> None:
        """Remove the socket file, unless another process has bound that path since."""
        if self._inode is None:
            return
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("control socket %s: cannot remove it: %s", self.path, error.strerror)
        self._inode = None

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        busy = len(self._clients) >= MAX_CLIENTS
        self._clients.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            if busy:
                # Its request is read (briefly) before the reply: a reply and a hang-up
                # before the client has sent it would fail its send (a broken pipe).
                with contextlib.suppress(TimeoutError, ValueError):
                    await asyncio.wait_for(reader.readline(), BUSY_READ_S)
                reply = _error("busy: too many clients at once; try again")
            else:
                reply = await self._answer(reader)
            await _reply(writer, reply)
        except (ConnectionError, TimeoutError) as error:
            log.debug("control socket: client dropped: %s", error)
        except asyncio.CancelledError:
            # Stopping: the connection goes with the server. Returning (not re-raising)
            # keeps asyncio from logging a traceback for each client.
            log.debug("control socket: client dropped: the daemon is stopping")
        except Exception:
            log.exception("control socket: request failed; connection dropped")
        finally:
            self._clients.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> dict[str, object]:
        try:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)
        except TimeoutError:
            return _error(f"no request within {READ_TIMEOUT_S:g} s")
        except ValueError:  # the line went past the reader's limit
            return _error(f"request longer than {REQUEST_LIMIT} bytes")
        return self.handle(line)

    def handle(self, line: bytes) -> dict[str, object]:
        """The reply to one request line."""
        try:
            request = json_limits.loads(line.decode(), max_depth=MAX_REQUEST_DEPTH)
        except ValueError:  # UnicodeDecodeError, JSONDecodeError, JsonLimitError
            return _error('request is not JSON; send {"command": "status"}')
        command = request.get("command") if isinstance(request, dict) else None
        if command not in COMMANDS:
            return _error(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
        try:
            document = self._status()
        except Exception as error:
            log.exception("control socket: status failed")
            return _error(f"status failed: {error}")
        return {"ok": True, "status": document}


def group_id(group: str) -> int:
    """The gid of `group` (a name or a number); ControlSocketError when there is none."""
    if group.isascii() and group.isdigit():
        gid = int(group) if len(group) <= len(str(MAX_GID)) else MAX_GID + 1
        if gid > MAX_GID:
            raise ControlSocketError(f"control_group {group}: not a group number (0..{MAX_GID})")
        return gid
    try:
        return grp.getgrnam(group).gr_gid
    except (KeyError, ValueError, UnicodeError):
        raise ControlSocketError(
            f"control_group {group!r}: no such group on this host; create it or set "
            "control_group to an existing group (or null: root only)"
        ) from None


def _give_out(path: str, gid: int | None, mode: int, inode: tuple[int, int]) -> None:
    """Give the socket just bound at `path` (`inode`) its group, then its mode."""

    def check() -> None:
        info = os.lstat(path)
        if not stat.S_ISSOCK(info.st_mode) or (info.st_dev, info.st_ino) != inode:
            raise OSError(f"{path} changed while it was set up")

    check()
    if gid is not None:
        os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, mode)
    check()


async def _answers(path: str) -> bool:
    """Whether a server accepts connections on the Unix socket at `path`."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), PROBE_TIMEOUT_S)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except TimeoutError:
        return True  # a listener whose backlog is full is still a listener
    except OSError as error:
        raise ControlSocketError(f"control socket {path}: {error.strerror}") from None
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
    return True


async def _reply(writer: asyncio.StreamWriter, reply: Mapping[str, object]) -> None:
    writer.write(json.dumps(reply, sort_keys=True).encode() + b"\n")
    await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)


def _error(message: str) -> dict[str, object]:
    return {"ok": False, "error": message}
