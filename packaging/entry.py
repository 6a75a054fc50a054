"""Entry point of the single-file executable: the `pingu` command.

Inside the executable, `sys.executable` is the executable itself, so code that starts a
helper as `[sys.executable, "-m", "pingu.lab.relay", ...]` (the network lab behind
`pingu demo`) would run pingu's command line instead. `pingu -m pingu.MODULE ARGS` therefore
runs that bundled module as a script, the way `python -m` would; only pingu's own modules.
"""

from __future__ import annotations

import runpy
import sys

from pingu.entrypoints.cli import run


def main() -> None:
    argv = sys.argv
    if getattr(sys, "frozen", False) and len(argv) > 2 and argv[1] == "-m":
        module = argv[2]
        if not module.startswith("pingu."):
            sys.exit(f"pingu: -m runs only pingu's own modules, not {module!r}")
        sys.argv = [argv[0], *argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    run()


if __name__ == "__main__":
    main()
