"""The state document: what is saved, what is trusted on load, and the atomic file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pingu.adapters.state_file import JsonStateFile, boot_id
from pingu.domain.health import Health
from pingu.domain.state import (
    STATE_KIND,
    SavedLease,
    SavedUplink,
    StateError,
    parse_state,
    state_document,
)

BOOT = "6f1c0e8e-0000-4000-8000-000000000001"
NOW = 1_800_000_000.0


def document() -> dict[str, object]:
    return state_document(
        {
            "wan1": (SavedLease("192.0.2.1", 1024, 16, 0), Health.UP, None),
            "ppp0": (SavedLease(None, 0, 3, 253), Health.DOWN, 90.0),
            "wan2": (None, Health.DOWN, None),
        },
        BOOT,
        NOW,
    )


def test_a_document_round_trips() -> None:
    saved = parse_state(json.loads(json.dumps(document())), BOOT, NOW + 10)
    assert saved == {
        "wan1": SavedUplink(SavedLease("192.0.2.1", 1024, 16, 0), Health.UP, None),
        "ppp0": SavedUplink(SavedLease(None, 0, 3, 253), Health.DOWN, 100.0),
        "wan2": SavedUplink(None, Health.DOWN, None),
    }


def test_after_a_reboot_only_script_times_are_kept() -> None:
    saved = parse_state(document(), "another-boot", NOW)
    assert saved["wan1"] == SavedUplink(None, None, None)
    assert saved["ppp0"] == SavedUplink(None, None, 90.0)


def test_a_script_time_in_the_future_counts_as_just_now() -> None:
    assert parse_state(document(), BOOT, NOW - 1000)["ppp0"].reset_script_ago == 0.0


def broken(**changes: object) -> dict[str, object]:
    doc = document()
    uplinks = doc["uplinks"]
    assert isinstance(uplinks, dict)
    uplinks["wan1"] = {**uplinks["wan1"], **changes}
    return doc


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([], "not a pingu state file"),
        ({"kind": "something-else"}, "not a pingu state file"),
        ({"kind": STATE_KIND, "version": 99}, "state version 99"),
        ({"kind": STATE_KIND, "version": 1, "uplinks": []}, '"uplinks" must be an object'),
        (
            {"kind": STATE_KIND, "version": 1, "uplinks": {"wan1": 5}},
            "uplink 'wan1': must be an object",
        ),
        (broken(gateway="192.0.2.300"), "gateway '192.0.2.300' is not an IPv4 address"),
        (broken(gateway=7), "gateway 7 is not an IPv4 address"),
        (broken(metric=-1), "metric -1 is not an integer"),
        (broken(proto=True), "proto True is not an integer"),
        (broken(scope=256), "scope 256 is not an integer"),
        (broken(health="failing"), "health 'failing'"),
        (broken(reset_script_at="yesterday"), "reset_script_at 'yesterday' is not a time"),
        (broken(reset_script_at=float("nan")), "is not a time"),
    ],
)
def test_untrustworthy_documents_are_refused_with_a_reason(doc: object, why: str) -> None:
    with pytest.raises(StateError, match=why):
        parse_state(doc, BOOT, NOW)


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
