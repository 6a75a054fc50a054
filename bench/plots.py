"""The benchmark's plots, drawn from the raw figures of results.json: failover and failback
distributions per profile next to the floor and the schedule model, and the scaling curve.

``python -m bench.plots [--results bench/results.json] [--out DIR]`` redraws the PNG files
(next to results.json by default) without running anything; ``bench.run`` calls it at the
end of every run. matplotlib (Agg, no display) is a dependency of the bench only."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.model import PHASE_STEPS, Profile, ideal_failback, ideal_failover

log = logging.getLogger("bench.plots")
HERE = Path(__file__).resolve().parent
DPI = 100
# No matplotlib version in the files: the PNGs change only when the figures do.
PNG_METADATA = {"Software": None}
FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}


@dataclass(frozen=True)
class Plot:
    """A PNG drawn, by file name (relative to RESULTS.md), and what it shows."""

    file: str
    caption: str


def profile_of(name: str, raw: Mapping[str, Any]) -> Profile:
    """The probe settings a figure ran with, as its raw figures store them."""
    s = raw["profile"]
    return Profile(
        name,
        count=int(s["count"]),
        interval_s=float(s["interval"]) / 1000,
        timeout_s=float(s["timeout"]) / 1000,
        max_lost=int(s["max_lost"]),
        period_s=float(s["period"]),
    )


def cut_figures(figures: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The figures that cut upstreams at random phases (failover-seed, -fast, -ipv6...):
    each has its profile, its floor, its schedule model and every cut's times."""
    return [
        (name, figure["raw"])
        for name, figure in figures.items()
        if not figure.get("error")
        and {"profile", "cuts", "floor_s"} <= set(figure.get("raw") or {})
        and figure["raw"]["cuts"]
    ]


def draw(data: Mapping[str, Any], out: Path) -> list[Plot]:
    """Every plot the results have the figures for, written into ``out``."""
    figures: Mapping[str, Any] = data.get("figures") or {}
    out.mkdir(parents=True, exist_ok=True)
    drawn = []
    cuts = cut_figures(figures)
    if cuts:
        drawn.append(_save(out, "failover.png", _distributions(cuts, "failover")))
        drawn.append(_save(out, "failback.png", _distributions(cuts, "failback")))
    scaling = figures.get("scaling") or {}
    if not scaling.get("error") and (scaling.get("raw") or {}).get("sizes"):
        drawn.append(_save(out, "scaling.png", _scaling(scaling["raw"])))
    return drawn


CAPTIONS = {
    "failover.png": "Failover, from the cut of the upstream to pingu's route gone: every cut "
    "of each profile (its cumulative distribution), next to the floor (max_lost·interval + "
    "timeout) and the model (a daemon that loses no time, cut at a uniformly random phase of "
    "the round schedule).",
    "failback.png": "Failback, from the upstream back to pingu's route back (rise 1): every "
    "restore of each profile, next to the model for a uniformly random phase.",
    "scaling.png": "Scaling with the number of uplinks (fast profile, the same cut phases at "
    "each size): wan1's failover (median, with best and worst), pingu's own share of it "
    "(decisive timeout to route gone) and the daemon's CPU, next to linear growth from the "
    "smallest size.",
}


def _save(out: Path, name: str, figure: Figure) -> Plot:
    FigureCanvasAgg(figure)
    path = out / name
    figure.savefig(path, format="png", dpi=DPI, metadata=PNG_METADATA)
    log.info("plots: wrote %s", path)
    return Plot(name, CAPTIONS[name])


def _ecdf(axes: Axes, values: Sequence[float], **style: Any) -> None:
    """A cumulative distribution as steps: the share of values at most x."""
    ordered = sorted(values)
    n = len(ordered)
    axes.step(
        [ordered[0], *ordered], [0.0, *((i + 1) / n for i in range(n))], where="post", **style
    )


def _model(profile: Profile, ideal: Callable[[Profile, float], float]) -> list[float]:
    """The model's times over phases spread evenly across one period (bench.model)."""
    return [ideal(profile, profile.period_s * i / PHASE_STEPS) for i in range(PHASE_STEPS)]


def _series(raw: Mapping[str, Any], kind: str) -> dict[str, list[float]]:
    """Each cut's time of ``kind`` (failover, failback), by family when the cuts have one."""
    series: dict[str, list[float]] = {}
    for cut in raw["cuts"]:
        value = cut.get(f"{kind}_s")
        if value is None:
            continue
        family = cut.get("family")
        label = FAMILY_NAMES.get(family, f"family {family}") if family else "measured"
        series.setdefault(label, []).append(float(value))
    return series


def _distributions(cuts: Sequence[tuple[str, Mapping[str, Any]]], kind: str) -> Figure:
    figure = Figure(figsize=(5.2 * len(cuts), 4.2), layout="constrained")
    ideal = ideal_failover if kind == "failover" else ideal_failback
    what = "cut to route gone (s)" if kind == "failover" else "upstream back to route back (s)"
    for axes, (name, raw) in zip(
        figure.subplots(1, len(cuts), squeeze=False)[0], cuts, strict=True
    ):
        profile = profile_of(name, raw)
        model = _model(profile, ideal)
        _ecdf(axes, model, color="0.55", linestyle="--", label="model (random phase)")
        for label, values in _series(raw, kind).items():
            _ecdf(axes, values, linewidth=2, label=f"{label} (n={len(values)})")
        if kind == "failover":
            floor = float(raw["floor_s"])
            axes.axvline(floor, color="tab:red", linestyle=":", label=f"floor {floor:g} s")
        axes.set_title(f"{name}\n{profile.describe()}", fontsize=9)
        axes.set_xlabel(what)
        axes.set_ylabel("share of the cuts" if kind == "failover" else "share of the restores")
        axes.set_ylim(0, 1.02)
        axes.set_xlim(left=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="lower right")
    figure.suptitle(f"pingu: {kind} per probe profile", fontsize=11)
    return figure


def _scaling(raw: Mapping[str, Any]) -> Figure:
    sizes = sorted(raw["sizes"].items(), key=lambda item: int(item[0]))
    uplinks = [int(size) for size, _ in sizes]
    figure = Figure(figsize=(14, 4.2), layout="constrained")
    failover, share, cpu = figure.subplots(1, 3)

    def spread(values: Sequence[Mapping[str, float]], scale: float) -> tuple[Any, ...]:
        median = [v["median"] * scale for v in values]
        low = [(v["median"] - v["best"]) * scale for v in values]
        high = [(v["worst"] - v["median"]) * scale for v in values]
        return median, [low, high]

    over = [s["failover"] for _, s in sizes]
    median, bars = spread(over, 1.0)
    failover.errorbar(uplinks, median, yerr=bars, marker="o", capsize=4, label="median, best-worst")
    model = raw.get("model_failover") or {}
    if "median" in model:
        failover.axhline(
            model["median"], color="0.55", linestyle="--", label="model median (random phase)"
        )
    failover.set_ylabel("wan1 failover (s)")
    failover.set_ylim(bottom=0)

    median, bars = spread([s["pingu_share"] for _, s in sizes], 1000.0)
    share.errorbar(uplinks, median, yerr=bars, marker="o", capsize=4, label="median, best-worst")
    share.set_ylabel("pingu's share of the failover (ms)")
    share.set_ylim(bottom=0)

    used = [float(s["cpu_percent"]) for _, s in sizes]
    cpu.plot(uplinks, used, marker="o", label="measured")
    cpu.plot(
        uplinks,
        [used[0] * n / uplinks[0] for n in uplinks],
        color="0.55",
        linestyle="--",
        label=f"linear from {uplinks[0]} uplinks",
    )
    cpu.set_ylabel("CPU (% of a core)")
    cpu.set_ylim(bottom=0)
    for axes in (failover, share, cpu):
        axes.set_xscale("log", base=2)
        axes.set_xticks(uplinks, [str(n) for n in uplinks])
        axes.set_xlabel("uplinks")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("pingu: scaling with the number of uplinks (fast profile)", fontsize=11)
    return figure


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.plots", description=__doc__)
    parser.add_argument(
        "--results", type=Path, default=HERE / "results.json", help="the raw figures"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the PNGs (default: beside it)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    data = json.loads(args.results.read_text())
    drawn = draw(data, args.out or args.results.parent)
    if not drawn:
        log.error("plots: %s has no figure to plot", args.results)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
