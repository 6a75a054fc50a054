"""What a reload (SIGHUP) may change, as the table says: the settings read once at start-up
keep their running values until a restart, and a change of some rejects the reload."""

from __future__ import annotations

import dataclasses

from pingu.domain.config.model import Config
from pingu.domain.config.settings import TOP_LEVEL, Reload, setting

REJECTS_RELOAD = frozenset(s.key for s in TOP_LEVEL if s.reload is Reload.REJECTS)


def restart_only(old: Config, new: Config) -> list[str]:
    """The keys, in the table's order, whose change from `old` to `new` needs a restart
    (those in REJECTS_RELOAD included)."""
    return [
        s.key
        for s in TOP_LEVEL
        if s.reload is not Reload.APPLIES and getattr(old, s.attribute) != getattr(new, s.attribute)
    ]


def keep_running(new: Config, running: Config, keys: list[str]) -> Config:
    """`new` with the running values of `keys` (from `restart_only`), so that what is shown
    until the restart is what is in use."""
    attributes = [setting(key).attribute for key in keys]
    return dataclasses.replace(new, **{name: getattr(running, name) for name in attributes})
