"""Builds `dist/pingu`, the single-file executable (PyInstaller one-file), for the
architecture of the machine it runs on. `nox -s build` runs it in a fresh environment;
by hand: `pip install pyinstaller . && python packaging/build.py`.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "packaging" / "entry.py"

# PyInstaller follows `import` statements in Python code; these are the imports it cannot
# see. dependency_injector's containers and providers are compiled (Cython): what they
# import from the standard library is invisible to the analysis.
COMPILED_IMPORTS = (
    "configparser",
    "contextvars",
    "copy",
    "errno",
    "json",
    "threading",
    "warnings",
)
# Never needed at run time, yet reachable through optional imports: test tools, GUIs.
EXCLUDES = (
    "_pytest",
    "hypothesis",
    "IPython",
    "pytest",
    "pytest_asyncio",
    "pytest_bdd",
    "tkinter",
)


def hidden_imports() -> list[str]:
    """Modules to bundle although no static import reaches them.

    - pingu's own lazily imported modules: the runtime, the prober, and the network lab
      that `pingu demo` builds (`collect_submodules` takes the whole package).
    - pyroute2 picks modules at run time (interface-kind plugins found by scanning its
      package, message classes chosen by family): all of it, but its pytest fixtures.
    - dependency_injector: every compiled module, which import one another from C.
    """
    from PyInstaller.utils.hooks import collect_submodules  # noqa: PLC0415 (build-time only)

    modules = {
        *collect_submodules("pingu"),
        *collect_submodules("pyroute2", filter=lambda name: not name.startswith("pyroute2.fix")),
        *collect_submodules(
            "dependency_injector",
            filter=lambda name: not name.startswith("dependency_injector.ext"),
        ),
        *COMPILED_IMPORTS,
    }
    missing = {"pingu.adapters.prober", "pingu.entrypoints.runtime", "pingu.lab"} - modules
    if missing:
        raise SystemExit(f"build: pingu modules not found: {sorted(missing)}")
    return sorted(modules)


def pyinstaller_arguments(dist: Path, work: Path, hidden: Sequence[str]) -> list[str]:
    args = [
        "--onefile",
        "--name=pingu",
        "--noconfirm",
        "--clean",
        "--strip",
        "--log-level=WARN",
        f"--distpath={dist}",
        f"--workpath={work}",
        f"--specpath={work}",
        f"--paths={ROOT}",
    ]
    args += [f"--hidden-import={name}" for name in hidden]
    args += [f"--exclude-module={name}" for name in EXCLUDES]
    return [*args, str(ENTRY)]


def main(argv: Sequence[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--dist", type=Path, default=ROOT / "dist", help="output directory")
    options.add_argument(
        "--work", type=Path, default=ROOT / "build" / "pyinstaller", help="scratch directory"
    )
    args = options.parse_args(argv)
    # This checkout's pingu, not an installed copy, for the analysis and for the helper
    # processes PyInstaller starts (they inherit sys.path).
    sys.path.insert(0, str(ROOT))
    import PyInstaller.__main__  # noqa: PLC0415 (build-time only)

    started = time.monotonic()
    PyInstaller.__main__.run(pyinstaller_arguments(args.dist, args.work, hidden_imports()))
    bundle = args.dist / "pingu"
    size_mib = bundle.stat().st_size / 2**20
    took = time.monotonic() - started
    print(f"build: {bundle} for {platform.machine()}, {size_mib:.1f} MiB, in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
