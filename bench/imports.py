"""What pingu's memory is made of: a fresh interpreter imports, stage by stage, what the
daemon imports, and reports its RSS, the time taken and the modules loaded after each.

``python -m bench.imports`` prints one JSON object. Stages are cumulative: each one's
cost is what it adds to those before it. scapy comes last: pingu does not import it
(the seed did), so its stage says what it would cost."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ssl", ("ssl",)),  # asyncio imports it whether or not TLS is used: shown apart
    ("asyncio", ("asyncio",)),
    ("pyroute2", ("pyroute2",)),
    ("dependency_injector", ("dependency_injector.containers", "dependency_injector.providers")),
    ("prometheus_client", ("prometheus_client",)),
    (
        "pingu",
        (
            "pingu.entrypoints.cli",
            "pingu.entrypoints.runtime",
            "pingu.entrypoints.containers",
            "pingu.adapters.netlink",
            "pingu.adapters.prober",
        ),
    ),
    ("scapy", ("scapy.all",)),
)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    report: list[dict[str, object]] = [
        {"stage": "interpreter", "rss_kb": rss_kb(), "seconds": 0.0, "modules": len(sys.modules)}
    ]
    scapy_before = "scapy" in sys.modules
    for stage, modules in STAGES:
        if stage == "scapy":
            scapy_before = "scapy" in sys.modules
        start = time.perf_counter()
        try:
            for module in modules:
                importlib.import_module(module)
        except ModuleNotFoundError:
            continue  # not a dependency of this pingu (any more)
        elapsed = time.perf_counter() - start
        report.append(
            {"stage": stage, "rss_kb": rss_kb(), "seconds": elapsed, "modules": len(sys.modules)}
        )
    sys.stdout.write(json.dumps({"stages": report, "pingu_imports_scapy": scapy_before}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
