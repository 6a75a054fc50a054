"""The closed sets of words some settings take: each value is what the file says."""

from __future__ import annotations

from enum import Enum


class InitialState(Enum):
    """How an uplink starts before its first verdict: trusted (`up`) or not (`down`, seed)."""

    UP = "up"
    DOWN = "down"


class OnExit(Enum):
    """What a clean stop leaves: the table as before pingu (`restore`), or pingu's routes."""

    RESTORE = "restore"
    KEEP = "keep"


class WhenAllDown(Enum):
    """With every uplink down: no default route (`none`, seed), or the best one kept."""

    NONE = "none"
    KEEP_BEST = "keep_best"
