"""The state store: one small JSON file, replaced atomically, never trusted blindly."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from pingu.domain.state import StateError

MAX_STATE_BYTES = 1024 * 1024
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class JsonStateFile:
    """Reads and atomically replaces the state document at `path` (mode 0600)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def read(self) -> object | None:
        """The parsed document; None when there is none; StateError when it is unreadable."""
        try:
            with self.path.open("rb") as file:
                data = file.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateError(f"cannot read it: {error.strerror or error}") from None
        if len(data) > MAX_STATE_BYTES:
            raise StateError(f"larger than {MAX_STATE_BYTES} bytes")
        try:
            document: object = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StateError(f"not valid JSON ({error})") from None
        return document

    def write(self, document: dict[str, object]) -> None:
        """Write a temporary file beside the target, flush it to disk, rename it over."""
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        with contextlib.suppress(OSError):
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


def boot_id() -> str:
    """This boot's random id (gateways saved in another boot are stale)."""
    try:
        return Path(BOOT_ID_PATH).read_text().strip()
    except OSError:
        return ""
