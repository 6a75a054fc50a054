"""The configuration: one table of settings (`settings.py`), the frozen model built from it
(`model.py`), the rules that build it from parsed JSON (`rules.py`), and what it means
(`explain.py`), may change at a reload (`reload.py`), and says in the README (`docs.py`)."""

from pingu.domain.config.choices import InitialState, OnExit, WhenAllDown
from pingu.domain.config.explain import detection_bounds, effective_settings, round_seconds
from pingu.domain.config.kinds import (
    DEFAULT_METRICS_HOST,
    join_path,
    script_argv,
    script_text_problem,
)
from pingu.domain.config.model import Config, UplinkConfig
from pingu.domain.config.reload import REJECTS_RELOAD, keep_running, restart_only
from pingu.domain.config.rules import MISSING, build_config, normalized_keys
from pingu.domain.config.settings import (
    DEFAULT_CONTROL_SOCKET,
    DEFAULT_STATE_FILE,
    SCRIPT_KEYS,
)

__all__ = [
    "DEFAULT_CONTROL_SOCKET",
    "DEFAULT_METRICS_HOST",
    "DEFAULT_STATE_FILE",
    "MISSING",
    "REJECTS_RELOAD",
    "SCRIPT_KEYS",
    "Config",
    "InitialState",
    "OnExit",
    "UplinkConfig",
    "WhenAllDown",
    "build_config",
    "detection_bounds",
    "effective_settings",
    "join_path",
    "keep_running",
    "normalized_keys",
    "restart_only",
    "round_seconds",
    "script_argv",
    "script_text_problem",
]
