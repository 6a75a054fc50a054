"""What a configuration means to the operator: every setting in the file's words, and how
long an uplink takes to be found dead or back (`pingu check-config`)."""

from __future__ import annotations

from pingu.domain.config.model import Config, UplinkConfig
from pingu.domain.config.settings import INTERFACES, PER_INTERFACE, TOP_LEVEL, Setting, Where


def detection_bounds(uplink: UplinkConfig) -> tuple[float, float]:
    """Worst-case seconds to take a dead uplink down, and to bring a recovered one back.

    A passing round lasts L; rounds start every P = max(period, L); a failing round is
    decided after max_lost + 1 lost echoes (F). Going down takes `fall` rounds, coming
    back `rise` rounds, plus the round in progress when the uplink changed.
    """
    round_s = round_seconds(uplink)
    every_s = max(uplink.period, round_s)
    fail_s = (uplink.max_lost * uplink.interval_ms + uplink.timeout_ms) / 1000
    return uplink.fall * every_s + fail_s, uplink.rise * every_s + round_s


def round_seconds(uplink: UplinkConfig) -> float:
    """How long a passing round lasts: the last echo is sent, then waited for."""
    return ((uplink.count - 1) * uplink.interval_ms + uplink.timeout_ms) / 1000


def effective_settings(config: Config) -> dict[str, object]:
    """The configuration with every default filled in, in the file's key names: the top
    level's own settings in the table's order, each interface's sorted by key."""
    settings: dict[str, object] = {}
    for setting in TOP_LEVEL:
        if setting is INTERFACES:
            settings[setting.key] = {u.name: _uplink_settings(u) for u in config.uplinks}
        elif setting.where is Where.TOP:
            settings[setting.key] = shown(setting, getattr(config, setting.attribute))
    return settings


def _uplink_settings(uplink: UplinkConfig) -> dict[str, object]:
    return {
        setting.key: shown(setting, getattr(uplink, setting.attribute))
        for setting in sorted(PER_INTERFACE, key=lambda setting: setting.key)
    }


def shown(setting: Setting, value: object) -> object:
    """A value of the model as the file would say it (null as None)."""
    return None if value is None else setting.kind.show(value)
