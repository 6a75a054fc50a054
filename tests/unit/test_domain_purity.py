"""The domain stays pure: no I/O, clock, asyncio or network library imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pingu.domain

FORBIDDEN = {
    "asyncio",
    "pyroute2",
    "scapy",
    "subprocess",
    "socket",
    "time",
    "logging",
    "os",
    "threading",
    "dependency_injector",
    "pingu.adapters",
    "pingu.entrypoints",
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_imports_nothing_impure() -> None:
    domain = Path(pingu.domain.__file__).parent
    files = sorted(domain.rglob("*.py"))  # the config package's modules too
    assert len(files) >= 8
    assert domain / "config" / "rules.py" in files
    offending = {
        f"{path.relative_to(domain)}: {name}"
        for path in files
        for name in imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    }
    assert offending == set()


def test_the_check_itself_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom time import monotonic\n")
    assert imported_modules(bad) == {"asyncio", "time"}
