"""bench/plots.py on small made-up results: the PNGs are written, are PNGs, and say what
the figures hold; RESULTS.md shows them."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

from bench import plots
from bench.model import SEED, Profile
from bench.report import write_markdown
from bench.results import Result, Row

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cut_figure(profile: Profile, n: int, seed: int, families: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    cuts = []
    for i in range(n):
        cut: dict[str, Any] = {
            "uplink": f"wan{i % 2 + 1}",
            "failover_s": profile.floor_s + rng.random() * profile.period_s,
            "failback_s": rng.random() * (profile.period_s + profile.round_s),
        }
        if families:
            cut["family"] = 4 if i % 2 == 0 else 6
        cuts.append(cut)
    cuts.append({"uplink": "wan1", "failover_s": None, "failback_s": None})  # a missed cut
    return {
        "error": None,
        "raw": {"profile": profile.settings(), "floor_s": profile.floor_s, "cuts": cuts},
    }


def summary(median: float, spread: float) -> dict[str, float]:
    return {"best": median - spread, "median": median, "worst": median + 2 * spread}


def results(seed: int = 1) -> dict[str, Any]:
    return {
        "meta": {},
        "figures": {
            "startup": {"error": None, "raw": {"runs": [0.2, 0.21]}},
            "failover-seed": cut_figure(SEED, 6, seed),
            "failover-ipv6": cut_figure(SEED, 6, seed + 1, families=True),
            "failover-fast": {"error": "RuntimeError: lab broke", "raw": {}},
            "scaling": {
                "error": None,
                "raw": {
                    "model_failover": {"median": 1.07, "worst": 1.8},
                    "sizes": {
                        str(n): {
                            "failover": summary(1.05, 0.1 * seed),
                            "pingu_share": summary(0.003, 0.001),
                            "cpu_percent": 0.5 * n**0.6,
                        }
                        for n in (2, 8, 32)
                    },
                },
            },
        },
    }


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (its first chunk must be IHDR)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_every_plot_is_a_png_of_the_figures_it_has(tmp_path: Path) -> None:
    drawn = plots.draw(results(), tmp_path)
    assert [p.file for p in drawn] == ["failover.png", "failback.png", "scaling.png"]
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(p.file for p in drawn)
    for plot in drawn:
        path = tmp_path / plot.file
        assert path.stat().st_size > 10_000
        width, height = png_size(path)
        assert width > 500
        assert height > 300
        assert plot.caption
    # one panel per profile that ran (the failed failover-fast has none): two, side by side
    failover_width, _ = png_size(tmp_path / "failover.png")
    assert failover_width == round(2 * 5.2 * plots.DPI)


def test_the_plots_follow_the_figures(tmp_path: Path) -> None:
    plots.draw(results(seed=1), tmp_path / "a")
    plots.draw(results(seed=1), tmp_path / "b")
    plots.draw(results(seed=2), tmp_path / "c")
    for name in ("failover.png", "scaling.png"):
        same = (tmp_path / "a" / name).read_bytes()
        assert (tmp_path / "b" / name).read_bytes() == same  # no date, no version inside
        assert (tmp_path / "c" / name).read_bytes() != same


def test_without_the_figures_nothing_is_drawn(tmp_path: Path) -> None:
    data = results()
    del data["figures"]["failover-seed"], data["figures"]["failover-ipv6"]
    assert [p.file for p in plots.draw(data, tmp_path)] == ["scaling.png"]
    data["figures"]["scaling"]["error"] = "TimeoutError"
    assert plots.draw(data, tmp_path / "none") == []


def test_python_m_bench_plots_redraws_beside_results_json(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(results()))
    assert plots.main(["--results", str(tmp_path / "results.json")]) == 0
    assert (tmp_path / "failback.png").read_bytes()[:8] == PNG_SIGNATURE
    (tmp_path / "empty.json").write_text(json.dumps({"meta": {}, "figures": {}}))
    assert plots.main(["--results", str(tmp_path / "empty.json"), "--out", str(tmp_path)]) == 1


def test_results_md_shows_the_plots(tmp_path: Path) -> None:
    meta = {
        "date": "2026-01-01 00:00 UTC",
        "command": "nox -s bench",
        "command_base": "nox -s bench",
        "mode": "full",
        "seed": 7,
        "duration_s": 60.0,
        "namespaces_left": [],
        "machine": {
            "uname": "Linux",
            "cpu_model": "cpu",
            "cores": 2,
            "memory_mb": 1024,
            "load_average_at_end": [0.1, 0.1, 0.1],
            "kernel": "6",
            "python": "3.11",
            "pyroute2": "0.9",
            "dependency_injector": "4",
            "pingu": "0.1.0",
            "commit": "abc",
        },
    }
    row = Row("figure", "1 s", "≤ 2 s", "nox -s bench", "why", True)
    drawn = plots.draw(results(), tmp_path)
    write_markdown(tmp_path / "RESULTS.md", [Result("x", [row])], meta, drawn)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Plots" in text
    for plot in drawn:
        assert f"![{plot.file}]({plot.file})" in text
        assert plot.caption in text
    write_markdown(tmp_path / "bare.md", [Result("x", [row])], meta)
    assert "## Plots" not in (tmp_path / "bare.md").read_text()
