"""Run pingu's benchmarks and write bench/RESULTS.md, bench/results.json and the plots.

``python -m bench.run [--quick] [--only FIGURE ... [--merge]] [--seed N]``, as root (``nox
-s bench`` does this). A figure that fails is reported as failed and the others still run;
the exit status is then 1. ``--merge`` keeps, from the results already in ``--out``, the
figures not run this time (each says when and at which commit it was measured)."""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import figures, plots
from bench import flows as traffic_flows
from bench.report import machine, write_json, write_markdown
from bench.results import Context, Result
from pingu.lab import prefixes_used

log = logging.getLogger("bench")
HERE = Path(__file__).resolve().parent

FIGURES: dict[str, Callable[[Context], Result]] = {
    "startup": figures.startup,
    "capture": figures.capture,
    "capture-ra": figures.capture_ra,
    "carrier": figures.carrier,
    "failover-seed": figures.failover_seed,
    "failover-ipv6": figures.failover_ipv6,
    "failover-fast": figures.failover_fast,
    "scaling": figures.scaling,
    "traffic-flood": figures.traffic_and_flood,
    "flows": traffic_flows.flows,  # issue 15: traffic after a switch (bench/flows.py)
}
ALL = ("soak", *FIGURES)  # the soak starts first and ends last


def _timed(name: str, work: Callable[[], Result]) -> Result:
    log.info("figure %s: starting", name)
    start = time.monotonic()
    try:
        result = work()
    except Exception as error:
        log.error("figure %s failed:\n%s", name, traceback.format_exc())
        result = Result(name, error=f"{type(error).__name__}: {error}")
    result.seconds = time.monotonic() - start
    log.info("figure %s: done in %.0f s", name, result.seconds)
    for row in result.rows:
        log.info("  %s: %s", row.figure, row.measured)
    return result


def run(ctx: Context, chosen: Sequence[str]) -> list[Result]:
    results: list[Result] = []
    soak = None
    if "soak" in chosen:
        try:
            soak = figures.start_soak(ctx)
        except Exception as error:
            log.error("soak: could not start:\n%s", traceback.format_exc())
            results.append(Result("soak", error=f"{type(error).__name__}: {error}"))
    try:
        for name in chosen:
            if name != "soak":
                results.append(_timed(name, functools.partial(FIGURES[name], ctx)))
    except BaseException:
        if soak is not None:
            soak.stack.close()  # interrupted: tear the soak labs down at once
        raise
    if soak is not None:
        log.info("soak: waiting for its %.0f s to be up", soak.duration)
        results.append(_timed("soak", functools.partial(figures.finish_soak, ctx, soak)))
    return results


def leftover_namespaces() -> list[str]:
    """Namespaces of the labs of this run that still exist (there should be none)."""
    done = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
    )
    ours = tuple(f"{prefix}-" for prefix in prefixes_used())
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return [name for name in names if ours and name.startswith(ours)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short development run")
    parser.add_argument("--only", nargs="+", choices=ALL, help="run only these figures")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random phases")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the results")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep configs and daemon logs in this directory"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the figures not run this time from the results already in --out",
    )
    return parser.parse_args(argv)


def earlier_results(out: Path, chosen: Sequence[str]) -> list[Result]:
    """The figures of ``out/results.json`` not in ``chosen``, each with when it was measured."""
    path = out / "results.json"
    if not path.exists():
        return []
    stored = json.loads(path.read_text())
    meta = stored.get("meta", {})
    machine_then = meta.get("machine", {})
    measured = {
        "date": meta.get("date"),
        "commit": machine_then.get("commit"),
        "mode": meta.get("mode"),
        "command": meta.get("command"),
        "machine": f"{machine_then.get('cpu_model')}, kernel {machine_then.get('kernel')}",
    }
    return [
        Result.kept(name, figure, measured)
        for name, figure in stored.get("figures", {}).items()
        if name not in chosen and name in ALL
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if os.geteuid() != 0:
        log.error("the benchmarks need root (network namespaces, raw sockets)")
        return 2
    chosen = [name for name in ALL if name in (args.only or ALL)]
    started = time.monotonic()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="pingu-bench-") as scratch:
        workdir = args.keep.resolve() if args.keep else Path(scratch)
        ctx = Context(args.quick, args.seed, workdir, sys.executable)
        results = run(ctx, chosen)
    left = leftover_namespaces()
    if left:
        log.error("namespaces of this run left behind: %s", left)
    kept = earlier_results(args.out, chosen) if args.merge else []
    failed = any(r.error for r in results)
    results += kept
    order = {name: i for i, name in enumerate(ALL)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    base = "nox -s bench"
    extra = [
        *(["--quick"] if args.quick else []),
        *(["--only", *args.only] if args.only else []),
        *(["--merge"] if args.merge else []),
    ]
    meta = {
        "date": date,
        "mode": "quick" if args.quick else "full",
        "seed": args.seed,
        "figures": chosen,
        "duration_s": time.monotonic() - started,
        "command": base + (" -- " + " ".join(extra) if extra else ""),
        "command_base": base,
        "machine": machine(),
        "namespaces_left": left,
        "kept_from_earlier_runs": {r.name: r.measured for r in kept},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", results, meta)
    drawn = draw_plots(args.out)
    write_markdown(args.out / "RESULTS.md", results, meta, drawn or [])
    log.info("wrote %s and %s in %.1f min", args.out / "RESULTS.md", args.out / "results.json",
             meta["duration_s"] / 60)  # fmt: skip
    return 1 if left or failed or drawn is None else 0


def draw_plots(out: Path) -> list[plots.Plot] | None:
    """The PNGs beside RESULTS.md, drawn from the results.json just written (as
    `python -m bench.plots` would); None when they could not be drawn."""
    try:
        return plots.draw(json.loads((out / "results.json").read_text()), out)
    except Exception:
        log.error("plots failed:\n%s", traceback.format_exc())
        return None


if __name__ == "__main__":
    sys.exit(main())
