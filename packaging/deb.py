"""Builds `dist/pingu_<version>_<arch>.deb` with dpkg-deb from a staging tree made here.
`nox -s deb` runs it in a fresh environment (with shtab, for the completion); by hand:
`pip install shtab . && python packaging/deb.py`.

The layout keeps start-up fast: pingu and its dependencies are installed as plain Python
in their own environment, `/usr/lib/pingu` (a virtual environment of the system's
`python3`, made here by hand: `pyvenv.cfg` and a `bin/python3` link), byte-compiled by
the postinst; `/usr/sbin/pingu` is a two-line launcher. Nothing unpacks itself at each
start, as the one-file executable does. The environment's compiled modules
(dependency_injector's, stable ABI) tie the package to this architecture, and the
environment's `lib/python3.X` to the system Python's minor version, hence its Depends.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "packaging"
ENV = Path("usr/lib/pingu")  # the Python environment pingu runs in
MAINTAINER = "pingu developers <pingu@example.org>"
HOMEPAGE = "https://github.com/lrodorigo/py-pingu"
UNIT = "pingu.service"
CONFFILES = ("/etc/pingu/config.json.example",)
# Built C sources of compiled modules (Cython's output): nothing imports them.
UNNEEDED = ("*.c", "*.h")
# Only libc's own libraries may be linked by what the environment ships.
LIBC6_SONAMES = {"libc.so.6", "libpthread.so.0", "libm.so.6", "libdl.so.2", "librt.so.1"}

DESCRIPTION = """\
multi-uplink failover routing daemon
 pingu keeps in the main routing table only the default routes of uplinks
 whose gateway really reaches the probe targets. It captures the default routes
 that DHCP and PPP clients install, pings the targets through each uplink's own
 gateway, and installs each working uplink's route with the metric configured;
 when the preferred uplink fails, traffic falls back to the next one.
 .
 It is a successor of py-pingu and reads the same config.json. This package
 ships pingu with its Python dependencies (pyroute2, dependency-injector,
 prometheus_client) in /usr/lib/pingu, run by the system's Python 3."""

LAUNCHER = f"""\
#!/bin/sh
# pingu's command: pingu in its own Python environment, isolated (-I) from PYTHON*
# variables, the current directory and users' site-packages.
exec /{ENV}/bin/python3 -I -m pingu "$@"
"""

POSTINST = f"""\
#!/bin/sh
set -e
case "$1" in
configure|abort-upgrade|abort-deconfigure|abort-remove)
    # Byte code for a fast start: compiled here, not shipped (nor written by the service,
    # to which /usr is read-only); prerm removes it.
    /{ENV}/bin/python3 -I -m compileall -q /{ENV}/lib >/dev/null || true
    # Enabled on a first install (and kept as the admin left it on upgrades); the unit's
    # ConditionPathExists keeps it from starting until /etc/pingu/config.json exists.
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        if deb-systemd-helper --quiet was-enabled {UNIT}; then
            deb-systemd-helper enable {UNIT} >/dev/null || true
        else
            deb-systemd-helper update-state {UNIT} >/dev/null || true
        fi
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then
            deb-systemd-invoke try-restart {UNIT} >/dev/null || true
        else
            deb-systemd-invoke start {UNIT} >/dev/null || true
        fi
    fi
    ;;
esac
exit 0
"""

PRERM = f"""\
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    deb-systemd-invoke stop {UNIT} >/dev/null || true
fi
case "$1" in
remove|upgrade|deconfigure|failed-upgrade)
    # The byte code the postinst compiled is not dpkg's to remove.
    find /{ENV} -depth -type d -name __pycache__ -exec rm -rf {{}} + 2>/dev/null || true
    ;;
esac
exit 0
"""

POSTRM = f"""\
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if command -v deb-systemd-helper >/dev/null 2>&1; then
    if [ "$1" = remove ]; then
        deb-systemd-helper mask {UNIT} >/dev/null || true
    fi
    if [ "$1" = purge ]; then
        deb-systemd-helper purge {UNIT} >/dev/null || true
        deb-systemd-helper unmask {UNIT} >/dev/null || true
    fi
fi
if [ "$1" = purge ]; then
    # The configuration the admin made from the example, and what pingu kept; any other
    # file of the admin's in /etc/pingu (a reset script) stays, with the directory.
    rm -f /etc/pingu/config.json
    rmdir --ignore-fail-on-non-empty /etc/pingu 2>/dev/null || true
    rm -rf /var/lib/pingu
fi
exit 0
"""

MIT = """\
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 THE SOFTWARE."""


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout


def build_date() -> int:
    """The last commit's time (SOURCE_DATE_EPOCH when set): every file's mtime and the
    changelog's date, so that two builds of one commit are the same."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        return int(run("git", "-C", str(ROOT), "log", "-1", "--format=%ct").strip())
    except (OSError, subprocess.CalledProcessError):
        return 0


def python_minor(python: str) -> str:
    return run(python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])").strip()


def install_environment(stage: Path, minor: str) -> Path:
    """pingu and its dependencies in /usr/lib/pingu: a virtual environment of the system's
    python3.X, made by hand so that nothing in it names the build machine's paths."""
    env = stage / ENV
    site = env / "lib" / f"python{minor}" / "site-packages"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
            "--disable-pip-version-check", "--no-warn-script-location",
            "--target", str(site), str(ROOT),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip
    shutil.rmtree(site / "bin")  # console scripts with the build machine's interpreter
    for pattern in (*UNNEEDED, "direct_url.json"):
        for path in site.rglob(pattern):
            path.unlink()
    for leftover in site.rglob("__pycache__"):
        shutil.rmtree(leftover)
    for module in site.rglob("*.py"):
        drop_shebang(module)
    for record in site.glob("*.dist-info/RECORD"):
        keep_what_is_there(record, site)
    (env / "bin").mkdir()
    # Relative, as policy wants a link inside /usr: /usr/lib/pingu/bin -> /usr/bin.
    (env / "bin" / "python3").symlink_to(f"../../../bin/python{minor}")
    (env / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {minor}\n"
    )
    return site


def drop_shebang(module: Path) -> None:
    """A library module's `#!/usr/bin/env python` line names an interpreter that is not
    the one it runs under, and modules are not run as programs here: the line becomes an
    empty comment (so that line numbers in tracebacks stay right)."""
    with module.open("rb") as file:
        first = file.readline()
    if first.startswith(b"#!"):
        module.write_bytes(b"#\n" + module.read_bytes()[len(first) :])


def keep_what_is_there(record: Path, site: Path) -> None:
    """A RECORD without the files removed above: the console scripts (whose lines name
    the build's interpreter), the C sources, direct_url.json."""
    lines = record.read_text().splitlines(keepends=True)
    kept = [line for line in lines if (site / line.split(",", 1)[0]).resolve().is_file()]
    record.write_text("".join(kept))


def libc_dependency(site: Path) -> str:
    """`libc6 (>= X)` for the compiled modules: the newest glibc symbol version they use.
    Anything linked beyond libc's own libraries stops the build (it would need a
    dependency this script does not know). Each is stripped, as dh_strip would (objdump
    and strip: binutils)."""
    newest: tuple[int, ...] = (2, 0)
    for shared in sorted(site.rglob("*.so")):
        needed = re.findall(r"NEEDED\s+(\S+)", run("objdump", "-p", str(shared)))
        foreign = set(needed) - LIBC6_SONAMES
        if foreign:
            raise SystemExit(f"deb: {shared} links {sorted(foreign)}: add their dependency")
        for version in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", run("objdump", "-T", str(shared))):
            newest = max(newest, tuple(int(part) for part in version.split(".")))
        run("strip", "--strip-unneeded", "--remove-section=.comment", str(shared))
    return f"libc6 (>= {'.'.join(map(str, newest))})"


def install_files(stage: Path, version: str, date: int) -> None:
    """The launcher, the unit, /etc/pingu, the manual pages, the completion, the docs."""
    sys.path.insert(0, str(ROOT))
    from pingu.entrypoints.completion import bash_completion  # noqa: PLC0415
    from pingu.entrypoints.manpages import PAGES  # noqa: PLC0415

    write(stage / "usr/sbin/pingu", LAUNCHER, 0o755)
    (stage / "usr/sbin/py-pingu").symlink_to("pingu")
    unit = (HERE / UNIT).read_text()
    unit = unit.replace("ExecStart=/usr/local/bin/pingu ", "ExecStart=/usr/sbin/pingu ")
    unit = re.sub(
        r"^# Install: .*\n", "# Installed by the Debian package pingu.\n", unit, flags=re.M
    )
    unit = unit.replace(
        "\nDescription=", "\nDocumentation=man:pingu(8) man:pingu.json(5)\nDescription=", 1
    )
    if "ExecStart=/usr/sbin/pingu " not in unit:
        raise SystemExit(f"deb: no ExecStart=/usr/local/bin/pingu in {UNIT}")
    write(stage / "lib/systemd/system" / UNIT, unit)
    example = (HERE / "debian" / "config.json.example").read_text()
    write(stage / "etc/pingu/config.json.example", example)
    for name, page in PAGES.items():
        section = name.rsplit(".", 1)[1]
        write_gz(stage / f"usr/share/man/man{section}/{name}.gz", page())
    (stage / "usr/share/man/man8/py-pingu.8.gz").symlink_to("pingu.8.gz")
    write(stage / "usr/share/bash-completion/completions/pingu", bash_completion())
    doc = stage / "usr/share/doc/pingu"
    write_gz(doc / "README.md.gz", (ROOT / "README.md").read_text())
    write_gz(doc / "changelog.gz", changelog(version, date))
    write(doc / "copyright", copyright_file(stage))
    # What a fleet and a pair of routers start from (the README explains each).
    for example in EXAMPLES:
        write(doc / "examples" / example.name, example.read_text())


EXAMPLES = (
    HERE / "keepalived" / "keepalived.conf.example",
    HERE / "prometheus" / "pingu-rules.yml",
    HERE / "grafana" / "pingu-dashboard.json",
)


def changelog(version: str, date: int) -> str:
    return (
        f"pingu ({version}) unstable; urgency=medium\n\n"
        f"  * Built from the pingu source tree, version {version}.\n\n"
        f" -- {MAINTAINER}  {formatdate(date)}\n"
    )


def copyright_file(stage: Path) -> str:
    site = next((stage / ENV / "lib").glob("python*/site-packages")).relative_to(stage)

    def licence_text(pattern: str) -> str:
        path = next((stage / site).glob(pattern))
        lines = path.read_text().strip().splitlines()
        return "\n".join(f" {line}" if line.strip() else " ." for line in lines)

    return f"""\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pingu

Files: *
Copyright: pingu developers
License: Expat
{MIT}

Files: {site}/pyroute2/*
Copyright: Peter Saveliev and the pyroute2 contributors
License: GPL-2+ or Apache-2.0
 pyroute2 is dual licensed. On Debian systems the full texts of both licences
 are in /usr/share/common-licenses/GPL-2 and /usr/share/common-licenses/Apache-2.0.

Files: {site}/prometheus_client/*
Copyright: The Prometheus Authors
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

Files: {site}/dependency_injector/*
Copyright: Roman Mogylatov
License: BSD-3-clause
{licence_text("dependency_injector-*.dist-info/licenses/LICENSE*")}

Files: {site}/typing_extensions.py
Copyright: Python Software Foundation
License: PSF-2.0
{licence_text("typing_extensions-*.dist-info/licenses/LICENSE")}
"""


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    path.chmod(0o644)


def installed_size_kib(stage: Path) -> int:
    """As dpkg-gencontrol counts it: each file in whole KiB, each directory and link one."""
    total = 0
    for path in stage.rglob("*"):
        if path.is_relative_to(stage / "DEBIAN"):
            continue
        if path.is_file() and not path.is_symlink():
            total += (path.stat().st_size + 1023) // 1024
        else:
            total += 1
    return total


def control_files(stage: Path, version: str, arch: str, minor: str, libc: str) -> None:
    major, low = minor.split(".")
    # procps: the unit's ExecReload is /bin/kill.
    depends = f"python3 (>= {minor}~), python3 (<< {major}.{int(low) + 1}), {libc}, procps"
    control = (
        f"Package: pingu\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_size_kib(stage)}\nDepends: {depends}\n"
        # `pingu demo` builds its lab with ip(8); the daemon itself never runs it.
        "Recommends: iproute2\n"
        f"Section: net\nPriority: optional\nHomepage: {HOMEPAGE}\nDescription: {DESCRIPTION}\n"
    )
    debian = stage / "DEBIAN"
    write(debian / "control", control)
    write(debian / "conffiles", "".join(f"{path}\n" for path in CONFFILES))
    for name, script in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
        write(debian / name, script, 0o755)
    sums = []
    for path in sorted(stage.rglob("*")):
        if path.is_file() and not path.is_symlink() and not path.is_relative_to(debian):
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            sums.append(f"{digest}  {path.relative_to(stage)}\n")
    write(debian / "md5sums", "".join(sums))


def normalise(stage: Path, date: int) -> None:
    """Directories 0755, files as written, every mtime the build date (links' too)."""
    for path in [stage, *stage.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
        elif path.is_file() and not path.is_symlink():
            executable = path.stat().st_mode & 0o111 and path.suffix != ".so"
            path.chmod(0o755 if executable else 0o644)
        os.utime(path, (date, date), follow_symlinks=False)


def build(out_dir: Path, python: str) -> Path:
    sys.path.insert(0, str(ROOT))
    from pingu import __version__ as version  # noqa: PLC0415

    arch = run("dpkg", "--print-architecture").strip()
    minor = python_minor(python)
    if minor != python_minor(sys.executable):
        raise SystemExit(
            f"deb: the package is for {python} (Python {minor}): build it with a Python "
            f"{minor}, not {sys.executable} ({python_minor(sys.executable)})"
        )
    date = build_date()
    with tempfile.TemporaryDirectory(prefix="pingu-deb-") as work:
        stage = Path(work) / "pingu"
        stage.mkdir()
        site = install_environment(stage, minor)
        libc = libc_dependency(site)
        install_files(stage, version, date)
        control_files(stage, version, arch, minor, libc)
        normalise(stage, date)
        out_dir.mkdir(parents=True, exist_ok=True)
        deb = out_dir / f"pingu_{version}_{arch}.deb"
        # dpkg-deb dates the archive's members by SOURCE_DATE_EPOCH, or else by the clock.
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(stage), str(deb)],
            env={**os.environ, "SOURCE_DATE_EPOCH": str(date)},
            capture_output=True,
            check=True,
            timeout=600,
        )
    return deb


def main(argv: list[str]) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--out", type=Path, default=ROOT / "dist", help="where the .deb goes")
    options.add_argument(
        "--python",
        default="/usr/bin/python3",
        help="the target's Python, whose minor version the package is built for",
    )
    args = options.parse_args(argv)
    deb = build(args.out, args.python)
    size = deb.stat().st_size
    print(f"{deb}: {size / 1024 / 1024:.1f} MiB ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
