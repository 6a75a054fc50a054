"""RESULTS.md and results.json from a run's results, with the machine and versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.model import FAST, SEED, ideal_failback, ideal_failover, over_phases
from bench.results import Result

if TYPE_CHECKING:
    from bench.plots import Plot


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return {
        "uname": " ".join(platform.uname()),
        "kernel": platform.release(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_mb": memory_kb // 1024,
        "load_average_at_end": os.getloadavg(),
        "python": sys.version.split()[0],
        "pyroute2": _version("pyroute2"),
        "dependency_injector": _version("dependency-injector"),
        "pingu": _version("pingu"),
        "commit": _git("rev-parse", "--short", "HEAD"),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def write_json(path: Path, results: list[Result], meta: dict[str, Any]) -> None:
    data = {"meta": meta, "figures": {r.name: _result_dict(r) for r in results}}
    path.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")


def _result_dict(result: Result) -> dict[str, Any]:
    document = {
        "seconds": result.seconds,
        "error": result.error,
        "rows": [asdict(row) for row in result.rows],
        "raw": result.raw,
    }
    if result.measured is not None:
        document["measured"] = result.measured
    return document


def _jsonable(value: object) -> object:
    if isinstance(value, tuple | set):
        return list(value)
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)  # type: ignore[call-overload]
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _mark(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


def write_markdown(
    path: Path, results: list[Result], meta: dict[str, Any], plots: Sequence[Plot] = ()
) -> None:
    m = meta["machine"]
    lines = [
        "# pingu benchmarks",
        "",
        f"Measured {meta['date']} with `{meta['command']}` ({meta['mode']} run, seed "
        f"{meta['seed']}, {meta['duration_s'] / 60:.1f} min). Raw figures: "
        "[`results.json`](results.json). Nothing here is asserted: these are measurements, "
        "set next to the targets of issue 7.",
        "",
        f"- machine: `{m['uname']}`; CPU {m['cpu_model']}, {m['cores']} cores, "
        f"{m['memory_mb']} MB; load average at the end {m['load_average_at_end'][0]:.2f} "
        "(other work shared the machine: expect noise in the tails)",
        f"- versions: kernel {m['kernel']}, Python {m['python']}, pyroute2 {m['pyroute2']}, "
        f"dependency-injector {m['dependency_injector']}, pingu {m['pingu']} "
        f"(commit {m['commit']})",
        "- namespaces of this run left behind: "
        + (", ".join(meta["namespaces_left"]) if meta["namespaces_left"] else "none"),
        *_kept_lines(meta.get("kept_from_earlier_runs") or {}),
        "",
        "| figure | measured | target | met | command | reading: what limits it |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        if result.error:
            lines.append(
                f"| {result.name} | **failed**: {_cell(result.error)} | | **no** | "
                f"`{meta['command_base']} -- --only {result.name}` | |"
            )
        for row in result.rows:
            lines.append(
                f"| {_cell(row.figure)} | {_cell(row.measured)} | {_cell(row.target)} | "
                f"{_mark(row.met)} | `{_cell(row.command)}` | {_cell(row.reading)} |"
            )
    lines += ["", *_plots(plots), *_method(), ""]
    path.write_text("\n".join(lines))


def _kept_lines(kept: dict[str, dict[str, Any]]) -> list[str]:
    """Which figures an earlier run measured (`--merge`), grouped by run."""
    runs: dict[tuple[str, ...], list[str]] = {}
    for name, measured in kept.items():
        fields = ("date", "commit", "mode", "machine")
        runs.setdefault(tuple(str(measured.get(f)) for f in fields), []).append(name)
    return [
        f"- kept from the {mode} run of {date} (commit {commit}, on {machine}), not measured "
        "again: " + ", ".join(f"`{name}`" for name in names)
        for (date, commit, mode, machine), names in runs.items()
    ]


def _plots(plots: Sequence[Plot]) -> list[str]:
    """The PNGs drawn beside RESULTS.md (bench/plots.py), each with what it shows."""
    if not plots:
        return []
    lines = ["## Plots", "", "Drawn from `results.json` by `python -m bench.plots`.", ""]
    for plot in plots:
        lines += [f"![{plot.file}]({plot.file})", "", plot.caption, ""]
    return lines


def _method() -> list[str]:
    seed_model, fast_model = over_phases(SEED, ideal_failover), over_phases(FAST, ideal_failover)
    seed_back = over_phases(SEED, ideal_failback)
    return [
        "## How it is measured",
        "",
        "- Every figure runs the real daemon (`python -m pingu run --config FILE`) in the "
        "daemon namespace of a `pingu.lab.Lab`, with its `state_file` and `control_socket` "
        "in a temporary directory. Leases are `lab.dhcp_add` routes (proto dhcp).",
        "- Route and link changes are timed by a raw rtnetlink socket of the bench opened "
        "in the namespace concerned (`bench/netlink.py`): a cut is the moment the ISP "
        "namespace's default route became a blackhole, a failover the moment pingu's route "
        "(proto 136) left table main, a carrier loss the kernel's link message. Both ends "
        "of every interval come from the same kind of monitor, so its reading delay cancels.",
        "- Faults fall at random phases of the round schedule: a random pause of up to one "
        "period precedes every cut and every restore (seeded, reproducible with `--seed`).",
        "- The echoes pingu sends and the replies it gets are watched by a packet socket of "
        "the bench on the uplink (`bench/sniffer.py`). That splits each failover at the "
        "moment the settings made it certain — the failing round's (max_lost+1)-th "
        "unanswered echo plus the timeout — into the settings' share and pingu's share.",
        f"- The floor is max_lost·interval + timeout: {SEED.floor_s:g} s at seed settings, "
        f"{FAST.floor_s:g} s with the fast profile (a cut just before an echo of a fresh "
        f"round). Over a uniformly random phase, a perfect daemon with rounds every period "
        f"would show a median of {seed_model['median']:.2f} s and a worst of "
        f"{seed_model['worst']:.2f} s at seed settings ({fast_model['median']:.2f} s / "
        f"{fast_model['worst']:.2f} s fast), and a failback median of "
        f"{seed_back['median']:.2f} s, worst {seed_back['worst']:.2f} s (seed).",
        "- IPv6 (`failover-ipv6`, `capture-ra`): the daemon is given a target of each family "
        "and manages every uplink in both; beside each DHCP lease, the route the kernel "
        "installs for a router advertisement (`lab.ra_add`: via fe80::1, proto ra, a 1800 s "
        "lifetime) is there to capture. `failover-ipv6` cuts one uplink's upstream in IPv4 "
        "only and another's in IPv6 only (a blackhole route of that family in the ISP "
        "namespace), both at the same phases of their family's rounds, and times each on "
        "that family's routes; the sniffer reads ICMPv6 echoes as it reads ICMP ones. "
        "`capture-ra` adds the RA route back by netlink as the kernel would at the router's "
        "next advertisement, and replays the IPv6 default routes to catch any gap.",
        "- CPU: `/proc/PID/stat` utime+stime (10 ms ticks) and, for resolution, the "
        "threads' run time from `/proc/PID/task/*/schedstat` (ns); the tables quote the "
        "latter. RSS: `VmRSS` (peak: `VmHWM`) of `/proc/PID/status`.",
        "- The soak daemons (memory after a while, idle and probing CPU) run in labs of "
        "their own for the whole bench, so the other figures share the machine with them.",
    ]
