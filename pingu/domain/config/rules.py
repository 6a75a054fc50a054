"""Parsed JSON -> Config: every key read as the table says (`settings.py`), then the few
rules between settings, each a small function; every problem collected, none fatal alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pingu.domain.config.explain import round_seconds
from pingu.domain.config.kinds import Rejected, join_path
from pingu.domain.config.model import Config, UplinkConfig, target_family
from pingu.domain.config.settings import (
    INTERFACES,
    PER_INTERFACE,
    REQUIRED,
    TOP_KEYS,
    TOP_LEVEL,
    UPLINK_KEYS,
    Setting,
    Where,
)
from pingu.domain.errors import ConfigError, ConfigProblem, shorten
from pingu.domain.model import Family

_PROTO_RESERVED = {
    1: "redirect",
    2: "kernel",
    3: "boot",
    4: "static",
    9: "ra",
    16: "dhcp",
}
# Numbers of /etc/iproute2/rt_protos used by routing daemons: allowed, but suspicious.
_PROTO_DAEMONS = {
    8: "gated",
    10: "mrt",
    11: "zebra",
    12: "bird",
    13: "dnrouted",
    14: "xorp",
    15: "ntk",
    17: "mrouted",
    18: "keepalived",
    42: "babel",
    99: "openr",
    186: "bgp",
    187: "isis",
    188: "ospf",
    189: "rip",
    192: "eigrp",
}
_IFNAMSIZ = 16


class _Missing:
    """The value of a required key that is absent."""

    def __repr__(self) -> str:
        return "(missing)"


MISSING: object = _Missing()


class _Unknown:
    """What a setting holds while it is read when its value is invalid (or absent and
    required): the rules that need it are not checked, and no model is built."""


_UNKNOWN: Any = _Unknown()


def build_config(raw: object) -> Config:
    """Validate parsed JSON and build the Config; raise ConfigError with every problem."""
    return _Builder().build(raw)


def normalized_keys(obj: dict[object, object], known: tuple[str, ...]) -> dict[object, object]:
    """`obj` with each key that names a known key only once spaces are stripped renamed to
    it (unless that key is also given)."""
    fixed: dict[object, object] = {}
    for key, value in obj.items():
        spaced = isinstance(key, str) and key not in known and key.strip() in known
        if spaced and isinstance(key, str) and key.strip() not in obj:
            fixed[key.strip()] = value
        else:
            fixed[key] = value
    return fixed


@dataclass
class _Level:
    """The settings of the top level or of one interface, as they are read."""

    given: dict[object, object]
    path: str
    name: str = ""  # the interface's
    # An interface's: the top level's values of what it does not set itself.
    inherited: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # by key; _UNKNOWN where invalid
    # The metric of each interface read so far, to the path of that interface.
    metrics: dict[int, str] = field(default_factory=dict)

    def known(self, *keys: str) -> bool:
        return all(self.values[key] is not _UNKNOWN for key in keys)

    def fields(self, settings: tuple[Setting, ...]) -> dict[str, Any]:
        return {setting.attribute: self.values[setting.key] for setting in settings}


# --- the rules between settings, each checked once the setting it names is read ----------


def _proto_is_free(level: _Level) -> ConfigProblem | None:
    """pingu's own routes must not be those of the kernel or of a DHCP or RA client."""
    proto = level.values["proto"]
    if proto not in _PROTO_RESERVED:
        return None
    return ConfigProblem(
        "proto",
        proto,
        f"{proto} is the '{_PROTO_RESERVED[proto]}' protocol: pingu would take those "
        "routes for its own; choose another number such as 136",
    )


def _proto_warning(proto: object) -> str | None:
    """A routing daemon's number is allowed, but its default routes would be taken too."""
    if proto not in _PROTO_DAEMONS:
        return None
    return (
        f"proto {proto} is the number of '{_PROTO_DAEMONS[proto]}' routes: pingu "
        "would take that daemon's default routes for its own"
    )


def _metric_is_unique(level: _Level) -> ConfigProblem | None:
    """The kernel keeps one default route per metric in table main."""
    metric = level.values["metric"]
    if not level.known("metric"):
        return None
    other = level.metrics.setdefault(metric, level.path)
    if other == level.path:
        return None
    return ConfigProblem(
        join_path(level.path, "metric"),
        metric,
        f"must differ from {other}.metric: the kernel keeps one default route per "
        "metric in table main, so the two routes would replace each other",
    )


def _max_lost_within_count(level: _Level) -> ConfigProblem | None:
    """max_lost may equal count (any reply passes), not exceed it."""
    count, max_lost = level.values["count"], level.values["max_lost"]
    if not level.known("count", "max_lost") or max_lost <= count:
        return None
    return ConfigProblem(
        join_path(level.path, "max_lost"),
        max_lost,
        f"must be at most count ({count}); max_lost = count means any reply passes",
    )


def _quorum_within_targets(level: _Level) -> ConfigProblem | None:
    """min_hosts_up, given here or inherited, is at most the number of targets (of the
    family with the most: within each family it is capped at that family's number)."""
    if not level.known("min_hosts_up", "host"):
        return None
    quorum, given = level.values["min_hosts_up"], level.values["host"]
    targets = max(([t for t in given if target_family(t) is family] for family in Family), key=len)
    if quorum <= len(targets):
        return None
    if "min_hosts_up" in level.given:
        return ConfigProblem(
            join_path(level.path, "min_hosts_up"),
            quorum,
            f"must be from 1 to the number of targets in host ({len(targets)})",
        )
    if "min_hosts_up" not in level.inherited:
        return None  # the top level's default
    return ConfigProblem(
        "min_hosts_up",
        quorum,
        f"more than the {len(targets)} target(s) of interface {level.name}: "
        f"set {level.path}.min_hosts_up",
    )


_Rule = Callable[[_Level], ConfigProblem | None]
_TOP_RULES: dict[str, _Rule] = {"proto": _proto_is_free, "min_hosts_up": _quorum_within_targets}
_UPLINK_RULES: dict[str, _Rule] = {
    "metric": _metric_is_unique,
    "max_lost": _max_lost_within_count,
    "min_hosts_up": _quorum_within_targets,
}


def _inherited_but_missing(
    given: dict[object, object], interfaces: dict[Any, Any]
) -> Iterator[ConfigProblem]:
    """A required top-level setting may be left out only if every interface sets its own."""
    for setting in TOP_LEVEL:
        if setting.where is not Where.BOTH or setting.default is not REQUIRED:
            continue
        if setting.key in given:
            continue
        without = [
            str(name)
            for name, settings in interfaces.items()
            if not (isinstance(settings, dict) and setting.key in settings)
        ]
        if without:
            yield ConfigProblem(
                setting.key,
                MISSING,
                f"required: interface(s) {', '.join(without)} set no {setting.key} of their own",
            )


def _long_round_warning(uplink: UplinkConfig) -> str | None:
    round_s = round_seconds(uplink)
    if round_s <= uplink.period:
        return None
    return (
        f"interfaces.{uplink.name}: a round can last {round_s:g} s "
        f"((count-1)*interval + timeout), longer than its period ({uplink.period:g} s): "
        "the next round then starts at once"
    )


def _ifname_problem(name: str) -> str | None:
    """Why `name` cannot be a Linux interface name (the kernel's dev_valid_name), or None.

    The kernel counts bytes, not characters: "é" * 8 is 16 bytes, one too many.
    """
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        return "an interface name must be valid Unicode text"
    if not 1 <= size < _IFNAMSIZ:
        return f"an interface name must be 1 to {_IFNAMSIZ - 1} bytes long (UTF-8)"
    if name in (".", ".."):
        return "an interface name cannot be '.' or '..'"
    if any(c in "/:\0" or c.isspace() for c in name):
        return "an interface name cannot contain '/', ':', whitespace or NUL"
    return None


def _suggestion(key: str, known: tuple[str, ...], elsewhere: tuple[str, ...], where: str) -> str:
    if len(key) > 2 * max(map(len, known)):
        return f"; known keys: {', '.join(known)}"  # too long to be a misspelling
    folded = key.strip().casefold()
    for candidate in known:
        if candidate.casefold() == folded:
            spaces = " (mind the spaces around it)" if key.strip() != key else ""
            return f"{spaces}; did you mean {candidate!r}?"
    close = difflib.get_close_matches(key.strip(), known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    if folded in elsewhere:
        return f"; {folded!r} is {where}"
    return f"; known keys: {', '.join(known)}"


# The top level's own settings, then those the interfaces inherit, then the interfaces.
_TOP_OWN = tuple(s for s in TOP_LEVEL if s.where is Where.TOP and s is not INTERFACES)
_TOP_INHERITED = tuple(s for s in TOP_LEVEL if s.where is Where.BOTH)


class _Builder:
    """Collects every problem while it builds the Config."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []
        self.metrics: dict[int, str] = {}

    def problem(self, path: str, value: object, rule: str) -> None:
        self.problems.append(ConfigProblem(path, value, rule))

    def build(self, raw: object) -> Config:
        if not isinstance(raw, dict):
            self.problem("", raw, "the configuration must be a JSON object")
            raise ConfigError(self.problems)
        raw = self.spaced_keys(raw, "", TOP_KEYS)
        self.unknown_keys(raw, "", TOP_KEYS, UPLINK_KEYS, "an interface setting")
        top = _Level(raw, "")
        self.read(top, _TOP_OWN + _TOP_INHERITED, _TOP_RULES)
        warning = _proto_warning(top.values["proto"])
        if warning is not None:
            self.warnings.append(warning)
        uplinks = self.uplinks(top)
        if self.problems or uplinks is None:
            raise ConfigError(self.problems)
        return Config(uplinks=uplinks, warnings=tuple(self.warnings), **top.fields(_TOP_OWN))

    def read(self, level: _Level, settings: tuple[Setting, ...], rules: dict[str, _Rule]) -> None:
        """Each of `settings` into level.values, then the rule checked after it."""
        for setting in settings:
            level.values[setting.key] = self.value(level, setting)
            rule = rules.get(setting.key)
            problem = rule(level) if rule is not None else None
            if problem is not None:
                self.problems.append(problem)
                level.values[setting.key] = _UNKNOWN

    def value(self, level: _Level, setting: Setting) -> Any:
        """The setting's value at `level`: the given one checked, or its default."""
        path = join_path(level.path, setting.key)
        if setting.key not in level.given:
            if setting.key in level.inherited:
                return level.inherited[setting.key]
            if setting.default is not REQUIRED:
                return setting.default
            if setting.where is not Where.BOTH:  # else _inherited_but_missing says
                self.problem(path, MISSING, f"required: {setting.kind.expected}")
            return _UNKNOWN
        given = level.given[setting.key]
        if given is None and setting.nullable:
            return None
        value = setting.kind.read(given, path)
        if isinstance(value, Rejected):
            self.problems.extend(value.problems)
            return _UNKNOWN
        return value

    def spaced_keys(
        self, obj: dict[object, object], path: str, known: tuple[str, ...]
    ) -> dict[object, object]:
        """`obj` with keys such as "reset_script_grace_period " (the seed README's trailing
        space) read as the key they name, each with a warning; py-pingu ignored them."""
        fixed = normalized_keys(obj, known)
        for key in obj:
            if not isinstance(key, str) or key in known or key.strip() not in known:
                continue
            where = join_path(path, key.strip())
            if key.strip() in obj:
                continue  # given twice: reported as an unknown key, with the right one named
            self.warnings.append(
                f"{join_path(path, key)!r} read as {where} (py-pingu ignored the key because of "
                "the spaces around its name, and used its default)"
            )
        return fixed

    def unknown_keys(
        self,
        obj: dict[object, object],
        path: str,
        known: tuple[str, ...],
        elsewhere: tuple[str, ...],
        where: str,
    ) -> None:
        for key, value in obj.items():
            if not isinstance(key, str):
                self.problem(path, key, "keys must be strings")
            elif key not in known:
                hint = _suggestion(key, known, elsewhere, where)
                self.problem(join_path(path, key), value, f"unknown key {shorten(repr(key))}{hint}")

    def uplinks(self, top: _Level) -> tuple[UplinkConfig, ...] | None:
        interfaces = self.value(top, INTERFACES)
        if interfaces is _UNKNOWN:
            return None
        interfaces = {
            name: self.spaced_keys(settings, join_path("interfaces", str(name)), UPLINK_KEYS)
            if isinstance(settings, dict)
            else settings
            for name, settings in interfaces.items()
        }
        self.problems.extend(_inherited_but_missing(top.given, interfaces))
        uplinks = [self.uplink(name, settings, top) for name, settings in interfaces.items()]
        if any(uplink is None for uplink in uplinks):
            return None
        return tuple(uplink for uplink in uplinks if uplink is not None)

    def uplink(self, name: object, settings: object, top: _Level) -> UplinkConfig | None:
        if not isinstance(name, str):
            self.problem("interfaces", name, "interface names must be strings")
            return None
        path = join_path("interfaces", name)
        why = _ifname_problem(name)
        if why is not None:
            self.problem(path, name, why)
        if not isinstance(settings, dict):
            self.problem(path, settings, "must be an object of interface settings")
            return None
        self.unknown_keys(settings, path, UPLINK_KEYS, TOP_KEYS, "a top-level setting")
        before = len(self.problems)
        inherited = {s.key: top.values[s.key] for s in _TOP_INHERITED}
        level = _Level(settings, path, name, inherited, metrics=self.metrics)
        self.read(level, PER_INTERFACE, _UPLINK_RULES)
        if not level.known(*UPLINK_KEYS) or len(self.problems) > before:
            return None
        uplink = UplinkConfig(name=name, **level.fields(PER_INTERFACE))
        warning = _long_round_warning(uplink)
        if warning is not None:
            self.warnings.append(warning)
        return uplink
