"""Fixtures for the single-file executable's tests: the executable under test (named by
$PINGU_BUNDLE, required), and labs that are always torn down."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import Lab, Uplink, prefixes_used

LabFactory = Callable[..., Lab]


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The executable under test. Missing is a failure, never a skip: CI must not go green
    on a bundle it never ran."""
    named = os.environ.get("PINGU_BUNDLE", "")
    if not named:
        pytest.fail(
            "PINGU_BUNDLE is not set: name the built executable, e.g. "
            "PINGU_BUNDLE=$PWD/dist/pingu (`nox -s bundle` builds and sets it)",
            pytrace=False,
        )
    path = Path(named)
    if not path.is_absolute() or not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"PINGU_BUNDLE={named}: not an absolute path to an executable", pytrace=False)
    return path


@pytest.fixture
def run_bundle(bundle: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the executable away from this checkout (another directory, no PYTHONPATH), so
    that only what it bundles can be imported."""

    def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bundle), *args],
            cwd=tmp_path,
            env=bundle_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def bundle_env() -> dict[str, str]:
    """Our environment without the variables that would let Python find this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = ""  # the lab adds its own; the executable must not rely on it
    return env


def namespaces_now() -> list[str]:
    done = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=10
    )
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture
def lab_factory() -> Iterator[LabFactory]:
    """``lab_factory(uplinks, targets=...)`` builds a lab (root only), torn down after the
    test; no namespace of this run may survive it."""
    if os.geteuid() != 0:
        reason = "the lab scenario needs root (network namespaces, raw sockets)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run it as root", pytrace=False)
        pytest.skip(reason)
    with contextlib.ExitStack() as stack:

        def make(uplinks: Sequence[str | Uplink], **kwargs: Any) -> Lab:
            return stack.enter_context(Lab(uplinks, **kwargs))

        yield make
    prefixes = prefixes_used()
    left = [ns for ns in namespaces_now() if any(ns.startswith(p + "-") for p in prefixes)]
    assert not left, f"namespaces of this run left behind: {left}"
