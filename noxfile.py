"""Developer and CI sessions: lint, typecheck, tests, netns (root), bench (root)."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "netns"]

TEST_DEPS = ["-e", ".[test]"]


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
    session.run("mypy", "pingu", "tests", "features", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the unit tests and the Gherkin features, with domain coverage."""
    session.install(*TEST_DEPS)
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
