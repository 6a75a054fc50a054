"""The state file: written atomically, read with suspicion."""

from __future__ import annotations

import os
import stat

import pytest

from pingu.adapters.state_file import JsonStateFile, boot_id
from pingu.domain.state import StateError


def document() -> dict[str, object]:
    """A state document as the daemon writes it (its rules: test_state_document.py)."""
    return {
        "kind": "pingu-state",
        "version": 2,
        "boot_id": "6f1c0e8e-0000-4000-8000-000000000001",
        "uplinks": {"wan1": {"health": "up", "lease": {"gateway": "192.0.2.1", "captured": []}}},
    }


def test_state_file_is_written_atomically_with_mode_0600(tmp_path) -> None:
    store = JsonStateFile(str(tmp_path / "sub" / "state.json"))
    assert store.read() is None
    store.write(document())
    assert store.read() == document()
    mode = stat.S_IMODE(os.stat(tmp_path / "sub" / "state.json").st_mode)
    assert mode == 0o600
    assert os.listdir(tmp_path / "sub") == ["state.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b" " * 2_000_000, "larger"),
    ],
)
def test_corrupt_state_files_are_reported(tmp_path, content: bytes, why: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=why):
        JsonStateFile(str(path)).read()


def test_unreadable_state_file_is_reported(tmp_path) -> None:
    with pytest.raises(StateError, match=r"not a regular file \(a directory\)"):
        JsonStateFile(str(tmp_path)).read()


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    store = JsonStateFile(str(tmp_path / "state.json"))
    store.write(document())
    with pytest.raises(TypeError):
        store.write({"bad": object()})
    assert store.read() == document()
    assert os.listdir(tmp_path) == ["state.json"]


def test_boot_id_is_read_from_the_kernel() -> None:
    assert len(boot_id()) == 36
