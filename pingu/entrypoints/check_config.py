"""`pingu check-config FILE`: validate a configuration and show what it means, or why not."""

from __future__ import annotations

import json
from typing import TextIO

from pingu.adapters.config_file import load_config
from pingu.adapters.gateways_file import describe_gateways, parse_gateways
from pingu.adapters.state_file import JsonStateFile
from pingu.domain.config import Config, UplinkConfig, detection_bounds, effective_settings
from pingu.domain.errors import ConfigError
from pingu.domain.state import StateError


def check_config(path: str, out: TextIO, err: TextIO) -> int:
    """Print the effective configuration, warnings and timings (0), or every problem (1)."""
    try:
        config = load_config(path)
    except ConfigError as error:
        count = len(error.problems)
        err.write(f"config {path}: {count} problem{'' if count == 1 else 's'}:\n")
        for problem in error.problems:
            err.write(f"  {problem}\n")
        return 1
    out.write(render(config))
    return 0


def render(config: Config) -> str:
    """The effective configuration as JSON, then warnings, then per-uplink timings."""
    lines = [json.dumps(effective_settings(config), indent=2)]
    lines.extend(f"warning: {warning}" for warning in config.warnings)
    if config.gateways_file is not None:
        lines.append(gateways_line(config.gateways_file, config))
    for uplink in config.uplinks:
        lines.append(families_line(uplink))
        lines.append(timing_line(uplink))
    return "\n".join(lines) + "\n"


def gateways_line(path: str, config: Config) -> str:
    """What pingu would take from py-pingu's gateways file at start-up."""
    try:
        gateways = parse_gateways(JsonStateFile(path).read())
    except StateError as error:
        return f"warning: gateways_file {path}: would be ignored: {error}"
    known = {name: gateways[name] for name in gateways if config.uplink(name) is not None}
    if not known:
        return f"gateways_file {path}: nothing to take (pingu writes it as it learns gateways)"
    return (
        f"gateways_file {path}: {describe_gateways(known)}; taken at start-up for uplinks "
        "whose gateway the state file does not know, each routed once a round through it passes"
    )


def families_line(uplink: UplinkConfig) -> str:
    """`wan1: managed in ipv4 (1 target, 1 must pass) and ipv6 (2 targets, 1 must pass)`:
    each family judged on its own, with its own route."""
    parts = []
    for family in uplink.families:
        count = len(uplink.targets_of(family))
        parts.append(
            f"{family.label} ({count} target{'' if count == 1 else 's'}, "
            f"{uplink.quorum(family)} must pass)"
        )
    return f"{uplink.name}: managed in {' and '.join(parts)}"


def timing_line(uplink: UplinkConfig) -> str:
    """`wan1: dead uplink detected within 7.0 s, recovered one back within 8.0 s (...)`."""
    dead_s, back_s = detection_bounds(uplink)
    return (
        f"{uplink.name}: dead uplink detected within {_seconds(dead_s)} s, "
        f"recovered one back within {_seconds(back_s)} s "
        f"(period {uplink.period:g} s, fall {uplink.fall}, rise {uplink.rise})"
    )


def _seconds(value: float) -> str:
    """7.0, 1.25, 0.001: at least one decimal, at most three."""
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
