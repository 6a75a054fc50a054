"""Fixtures for the Debian package's tests: the package under test (`dist/`, as `nox -s deb`
builds it) and fresh Debian roots made by mmdebstrap, into which it is installed with
dpkg. Nothing is ever installed onto this machine, and nothing installed starts: a root
has no systemd running in it (no /run/systemd/system, so the maintainer scripts start
nothing), and its policy-rc.d forbids every start anyway."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pingu import __version__
from tests.bundle.conftest import lab_factory  # the lab, torn down whatever happens

__all__ = ["FreshRoot", "lab_factory"]

ROOT = Path(__file__).resolve().parents[2]
# Made once per checkout (about 30 s and 50 MB from the mirror), then reused: delete the
# directory to take a newer Debian.
CACHE = ROOT / ".nox" / "debian-root"
SUITE = "bookworm"
MIRROR = os.environ.get("PINGU_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the package depends on, so that dpkg -i needs no network; and systemd, whose own
# tools judge the unit in the root (verify, is-enabled, condition) without running.
BASE_PACKAGES = ("python3", "procps", "systemd")
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
POLICY_RC_D = "#!/bin/sh\n# pingu's tests: no service may start in this root.\nexit 101\n"


def need_root() -> None:
    if os.geteuid() != 0:
        reason = "the package tests need root (mmdebstrap, chroot, dpkg in a fresh root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run them as root", pytrace=False)
        pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed (scripts/test-all installs it from Debian)", pytrace=False
        )
    return path


@pytest.fixture(scope="session")
def deb() -> Path:
    """The package under test: $PINGU_DEB, or the one `nox -s deb` built for this version."""
    named = os.environ.get("PINGU_DEB")
    if named:
        path = Path(named)
    else:
        arch = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
        path = ROOT / "dist" / f"pingu_{__version__}_{arch}.deb"
    if not path.is_file():
        pytest.fail(f"{path}: no package (`nox -s deb` builds it first)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def debian_base() -> Path:
    """A tarball of a minimal Debian root with Python 3, made by mmdebstrap from the
    Debian mirror, cached in .nox."""
    need_root()
    tarball = CACHE / f"{SUITE}-minbase-{'-'.join(BASE_PACKAGES)}.tar"
    if tarball.is_file():
        return tarball
    mmdebstrap = need_tool("mmdebstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(tarball.name + ".partial")
    partial.unlink(missing_ok=True)
    subprocess.run(
        [
            mmdebstrap, "--quiet", "--mode=root", "--format=tar", "--variant=minbase",
            "--include=" + ",".join(BASE_PACKAGES), SUITE, str(partial),
            f"deb {MIRROR} {SUITE} main",
        ],
        check=True,
        timeout=900,
    )  # fmt: skip
    partial.rename(tarball)
    return tarball


@dataclass
class FreshRoot:
    """A Debian root in a directory of its own, where commands run with chroot."""

    path: Path

    def command(self, *argv: str) -> list[str]:
        """`argv` run in the root, with a /proc of its own (bash, dpkg and pingu need it)
        mounted in a mount namespace of its own: nothing is mounted in this machine's."""
        return [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"', str(self.path), *argv,
        ]  # fmt: skip

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(*argv),
            env=CHROOT_ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def install(self, deb: Path) -> subprocess.CompletedProcess[str]:
        """`dpkg -i` of the package, as an operator would (its dependencies are there)."""
        shutil.copyfile(deb, self.path / "tmp" / deb.name)
        return self.run("dpkg", "-i", f"/tmp/{deb.name}", timeout=300)

    def file(self, path: str) -> Path:
        return self.path / path.lstrip("/")

    def processes(self) -> list[int]:
        """The processes whose root directory is this one (none may run after a test)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "root") == str(self.path):
                        found.append(int(entry.name))
        return found


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [point for point in points if point == str(path) or point.startswith(f"{path}/")]


@contextlib.contextmanager
def extracted(tarball: Path, directory: Path) -> Iterator[FreshRoot]:
    directory.mkdir()
    try:
        subprocess.run(
            ["tar", "-xpf", str(tarball), "-C", str(directory), "--numeric-owner"],
            check=True,
            timeout=300,
        )
        policy = directory / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC_D)
        policy.chmod(0o755)
        yield FreshRoot(directory)
    finally:
        # Nothing is ever mounted here in this machine's own mount namespace; were
        # something mounted, removing the tree would reach into it.
        left = mounts_under(directory)
        if left:
            raise AssertionError(f"mounts left under the root, not removed: {left}")
        shutil.rmtree(directory)


@pytest.fixture
def fresh_root(debian_base: Path, tmp_path: Path) -> Iterator[FreshRoot]:
    """A fresh Debian root for this test alone, removed after it."""
    with extracted(debian_base, tmp_path / "root") as root:
        yield root
        assert not root.processes(), "a process of the test still runs in its root"


@pytest.fixture(scope="session")
def installed_root(
    debian_base: Path, deb: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FreshRoot]:
    """A fresh Debian root with the package installed, shared by the tests that only
    use it; removed at the end."""
    with extracted(debian_base, tmp_path_factory.mktemp("installed") / "root") as root:
        root.install(deb)
        yield root


RunIn = Callable[..., subprocess.CompletedProcess[str]]
