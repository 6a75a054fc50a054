"""Developer and CI sessions: lint, typecheck, tests, netns (root), bench (root), build, bundle,
deb (root)."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "netns", "build", "bundle", "deb"]

TEST_DEPS = ["-e", ".[test]"]
BENCH_DEPS = ["-e", ".[bench]"]  # matplotlib, for bench/plots.py (and its unit test)
PYINSTALLER = "pyinstaller>=6.10,<7"
BUNDLE = Path("dist") / "pingu"
BUNDLE_SOURCES = ("pingu", "packaging", "pyproject.toml")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy (strict for pingu/domain)."""
    session.install("mypy>=1.10", *TEST_DEPS)
    session.install(*BENCH_DEPS)
    session.run("mypy", "pingu", "tests", "features", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the unit tests and the Gherkin features, with domain coverage."""
    session.install(*TEST_DEPS)
    session.install(*BENCH_DEPS)
    session.run(
        "pytest",
        "tests/unit",
        "features",
        "--cov=pingu.domain",
        "--cov-report=term-missing",
        "--cov-fail-under=95",
        *session.posargs,
    )


@nox.session
def netns(session: nox.Session) -> None:
    """Run the network-namespace scenarios on the real kernel (needs root)."""
    if os.geteuid() != 0:
        session.error(
            "the netns session needs root (network namespaces, raw sockets): "
            "run it as root, e.g. `sudo nox -s netns`"
        )
    session.install(*TEST_DEPS)
    session.run("pytest", "tests/netns", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """Build dist/pingu, a single-file executable (PyInstaller) for this machine's architecture."""
    session.install(PYINSTALLER, ".")
    session.run("python", "packaging/build.py", *session.posargs)


@nox.session
def bundle(session: nox.Session) -> None:
    """Test dist/pingu (built first unless up to date): --version, check-config, a lab failover."""
    session.install(*TEST_DEPS)
    if _bundle_is_stale():
        session.install(PYINSTALLER)
        session.run("python", "packaging/build.py")
    session.run(
        "pytest",
        "tests/bundle",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"PINGU_BUNDLE": str(BUNDLE.resolve())},
    )


def _bundle_is_stale() -> bool:
    """Whether dist/pingu is missing or older than a file it is built from."""
    if not BUNDLE.exists():
        return True
    built = BUNDLE.stat().st_mtime
    for source in map(Path, BUNDLE_SOURCES):
        files = source.rglob("*") if source.is_dir() else [source]
        for file in files:
            if "__pycache__" not in file.parts and file.is_file() and file.stat().st_mtime > built:
                return True
    return False


@nox.session
def deb(session: nox.Session) -> None:
    """Build dist/pingu_<version>_<arch>.deb and test it: lintian, a fresh Debian root (root)."""
    session.install(*TEST_DEPS)  # the test extra brings shtab, for the completion
    session.run("python", "packaging/deb.py")
    session.run("pytest", "tests/deb", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Measure failover, capture, start-up, memory and CPU in the lab (needs root); plot them."""
    if os.geteuid() != 0:
        session.error(
            "the bench session needs root (network namespaces, raw sockets): "
            "run it as root, e.g. `sudo nox -s bench`"
        )
    session.install(*TEST_DEPS)
    session.install(*BENCH_DEPS)
    session.run("python", "-m", "bench.run", *session.posargs)
