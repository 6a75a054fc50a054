"""The validated, frozen configuration model, and the rules that build it from parsed JSON."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import shlex
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from pingu.domain.errors import ConfigError, ConfigProblem, shorten


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


_E = TypeVar("_E", bound=Enum)

DEFAULT_STATE_FILE = "/var/lib/pingu/state.json"
DEFAULT_CONTROL_SOCKET = "/run/pingu/control.sock"
DEFAULT_METRICS_HOST = "127.0.0.1"


@dataclass(frozen=True)
class UplinkConfig:
    """Settings of one uplink (a configured interface). Times: seconds unless named _ms."""

    name: str
    metric: int
    targets: tuple[str, ...]
    min_hosts_up: int = 1
    count: int = 5
    max_lost: int = 2
    max_delay_ms: float = 1000.0
    period: float = 5.0
    interval_ms: int = 500
    timeout_ms: int = 1000
    rise: int = 1
    fall: int = 1
    reset_script: str | None = None
    reset_script_grace_period: float = 600.0
    up_script: str | None = None
    down_script: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole daemon configuration; `uplinks` keeps the file's order."""

    proto: int
    uplinks: tuple[UplinkConfig, ...]
    initial_state: InitialState = InitialState.UP
    on_exit: OnExit = OnExit.RESTORE
    when_all_down: WhenAllDown = WhenAllDown.NONE
    state_file: str | None = DEFAULT_STATE_FILE
    script_timeout: float = 60.0
    control_socket: str | None = DEFAULT_CONTROL_SOCKET
    control_group: str | None = None
    metrics: tuple[str, int] | None = None
    gateways_file: str | None = None
    table_check_interval: float | None = 10.0
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def uplink(self, name: str) -> UplinkConfig | None:
        """The settings of uplink `name`, or None when it is not configured."""
        for uplink in self.uplinks:
            if uplink.name == name:
                return uplink
        return None


# --- validation: parsed JSON -> Config ------------------------------------------------

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
_TOP_KEYS = (
    "host",
    "proto",
    "period",
    "min_hosts_up",
    "initial_state",
    "on_exit",
    "when_all_down",
    "state_file",
    "script_timeout",
    "control_socket",
    "control_group",
    "metrics",
    "gateways_file",
    "table_check_interval",
    "interfaces",
)
SCRIPT_KEYS = ("reset_script", "up_script", "down_script")
_UPLINK_KEYS = (
    "metric",
    "count",
    "max_lost",
    "max_delay",
    "period",
    "interval",
    "timeout",
    "rise",
    "fall",
    "host",
    "min_hosts_up",
    "reset_script",
    "reset_script_grace_period",
    "up_script",
    "down_script",
)
_MAX_METRIC = 2**32 - 1
# Large enough for any sane setting, small enough that the timing arithmetic stays finite.
_MAX_COUNT = 2**31 - 1
_IFNAMSIZ = 16
# A gid that chown can set (2^32 - 1 means "leave as is"); a name as groupadd allows one.
_MAX_GID = 2**32 - 2
_GROUP_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?", re.ASCII)
_GROUP_NAME_RULE = "up to 32 ASCII letters, digits, '_', '.' and '-' (not '-' first)"


class _Missing:
    """The value of a required key that is absent."""

    def __repr__(self) -> str:
        return "(missing)"


MISSING: object = _Missing()


def join_path(parent: str, key: str | int) -> str:
    """The path of `key` inside `parent`, as problems name it: `interfaces.eno2.host[1]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


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


def build_config(raw: object) -> Config:
    """Validate parsed JSON and build the Config; raise ConfigError with every problem."""
    return _Builder().build(raw)


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
    """The configuration with every default filled in, in the file's key names."""
    return {
        "proto": config.proto,
        "initial_state": config.initial_state.value,
        "on_exit": config.on_exit.value,
        "when_all_down": config.when_all_down.value,
        "state_file": config.state_file,
        "script_timeout": _plain(config.script_timeout),
        "control_socket": config.control_socket,
        "control_group": config.control_group,
        "metrics": f"{config.metrics[0]}:{config.metrics[1]}" if config.metrics else None,
        "gateways_file": config.gateways_file,
        "table_check_interval": (
            None if config.table_check_interval is None else _plain(config.table_check_interval)
        ),
        "interfaces": {u.name: _uplink_settings(u) for u in config.uplinks},
    }


def _uplink_settings(uplink: UplinkConfig) -> dict[str, object]:
    settings: dict[str, object] = {
        "metric": uplink.metric,
        "host": list(uplink.targets),
        "min_hosts_up": uplink.min_hosts_up,
        "count": uplink.count,
        "max_lost": uplink.max_lost,
        "max_delay": _plain(uplink.max_delay_ms),
        "period": _plain(uplink.period),
        "interval": uplink.interval_ms,
        "timeout": uplink.timeout_ms,
        "rise": uplink.rise,
        "fall": uplink.fall,
        "reset_script": uplink.reset_script,
        "reset_script_grace_period": _plain(uplink.reset_script_grace_period),
        "up_script": uplink.up_script,
        "down_script": uplink.down_script,
    }
    return dict(sorted(settings.items()))


def _plain(number: float) -> float | int:
    """5.0 reads better as 5 in what the operator sees."""
    return int(number) if number.is_integer() else number


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


# What only a shell would make of a command line: pingu runs scripts without one.
_SHELL_CHARACTERS = "|&;<>()$`*?[]\n"


def script_argv(text: str) -> tuple[str, ...]:
    """The argv of a validated script setting: `/usr/local/sbin/reset-modem wwan0` is the
    program and one argument, split as a shell would split words (quotes, backslashes),
    but with no shell: nothing is expanded or interpolated."""
    return tuple(shlex.split(text))


def script_text_problem(text: str) -> str | None:
    """Why `text` cannot be run as a script with arguments without a shell, or None."""
    needs_shell = sorted({c for c in text if c in _SHELL_CHARACTERS})
    if needs_shell:
        shown = " ".join(repr(c) for c in needs_shell)
        return (
            f"contains {shown}, which needs a shell (pipes, variables, ';', redirections, "
            "globs); pingu runs scripts without a shell: put the command in a script of its "
            "own and name that script here"
        )
    try:
        argv = shlex.split(text)
    except ValueError as error:
        return f"cannot be split into a program and its arguments: {error}"
    if not argv or any(word.startswith(("~", "#")) for word in argv):
        return "must be the absolute path of an executable (starting with '/'), then its arguments"
    if not argv[0].startswith("/"):
        return "must start with the absolute path of an executable (starting with '/')"
    return None


def _target_problem(text: str) -> str | None:
    """Why `text` cannot be a probe target, or None."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return "must be an IPv4 address such as 192.0.2.1 (no leading zeros)"
    if address.is_unspecified:
        return "0.0.0.0 is not a host that can answer echoes"
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address cannot be a probe target"
    if address.is_multicast:
        return "a multicast address cannot be a probe target"
    if address.is_loopback:
        return "a loopback address never answers through a gateway"
    return None


@dataclass
class _Top:
    """Top-level settings that interfaces inherit; None where the value was invalid."""

    targets: tuple[str, ...] | None
    host_given: bool
    period: float | None
    min_hosts_up: int | None


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
        raw = self.spaced_keys(raw, "", _TOP_KEYS)
        self.unknown_keys(raw, "", _TOP_KEYS, _UPLINK_KEYS, "an interface setting")
        proto = self.proto(raw)
        initial_state = self.choice(raw, "initial_state", InitialState.UP)
        on_exit = self.choice(raw, "on_exit", OnExit.RESTORE)
        when_all_down = self.choice(raw, "when_all_down", WhenAllDown.NONE)
        state_file = self.optional_path(raw, "state_file", DEFAULT_STATE_FILE)
        control_socket = self.optional_path(raw, "control_socket", DEFAULT_CONTROL_SOCKET)
        control_group = self.group(raw)
        script_timeout = self.number(raw, "", "script_timeout", 60.0, strictly_positive=True)
        metrics = self.metrics_address(raw)
        gateways_file = self.gateways_file(raw)
        table_check = (
            self.number(raw, "", "table_check_interval", 10.0, strictly_positive=True)
            if raw.get("table_check_interval", 10.0) is not None
            else None
        )
        top = _Top(
            targets=self.targets(raw["host"], "host") if "host" in raw else None,
            host_given="host" in raw,
            period=self.number(raw, "", "period", 5.0, strictly_positive=True),
            min_hosts_up=None,
        )
        top.min_hosts_up = self.min_hosts_up(raw, "", 1, top.targets)
        uplinks = self.uplinks(raw, top)
        if (
            self.problems
            or proto is None
            or initial_state is None
            or on_exit is None
            or when_all_down is None
            or script_timeout is None
            or uplinks is None
        ):
            raise ConfigError(self.problems)
        return Config(
            proto=proto,
            uplinks=uplinks,
            initial_state=initial_state,
            on_exit=on_exit,
            when_all_down=when_all_down,
            state_file=state_file,
            script_timeout=script_timeout,
            control_socket=control_socket,
            control_group=control_group,
            metrics=metrics,
            gateways_file=gateways_file,
            table_check_interval=table_check,
            warnings=tuple(self.warnings),
        )

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

    def proto(self, raw: dict[object, object]) -> int | None:
        proto = self.integer(raw, "", "proto", default=136, hi=255)
        if proto in _PROTO_RESERVED:
            self.problem(
                "proto",
                proto,
                f"{proto} is the '{_PROTO_RESERVED[proto]}' protocol: pingu would take those "
                "routes for its own; choose another number such as 136",
            )
            return None
        if proto in _PROTO_DAEMONS:
            self.warnings.append(
                f"proto {proto} is the number of '{_PROTO_DAEMONS[proto]}' routes: pingu "
                "would take that daemon's default routes for its own"
            )
        return proto

    def choice(self, raw: dict[object, object], key: str, default: _E) -> _E | None:
        """raw[key] as one of the values of `default`'s enum; `default` when absent."""
        value = raw.get(key, default.value)
        for option in type(default):
            if value == option.value:
                return option
        names = " or ".join(f'"{option.value}"' for option in type(default))
        self.problem(key, value, f"must be {names}")
        return None

    def optional_path(self, raw: dict[object, object], key: str, default: str) -> str | None:
        """An absolute file path, or null to do without; `default` when absent."""
        value = raw.get(key, default)
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not value.startswith("/")
            or value.endswith("/")
            or "\0" in value
        ):
            self.problem(key, value, "must be an absolute file path, or null to do without")
            return None
        return value

    def gateways_file(self, raw: dict[object, object]) -> str | None:
        """py-pingu's file of last gateways: a path (relative: to the working directory)."""
        value = raw.get("gateways_file")
        if value is None:
            return None
        if not isinstance(value, str) or not value or value.endswith("/") or "\0" in value:
            self.problem("gateways_file", value, "must be a file path, or null to do without")
            return None
        return value

    def group(self, raw: dict[object, object]) -> str | None:
        """The group allowed to use the control socket (a name or a number), or None."""
        value = raw.get("control_group")
        if value is None:
            return None
        rule = (
            f"must be a group name or number, or null: a name of {_GROUP_NAME_RULE}, "
            f"or a number from 0 to {_MAX_GID}"
        )
        if isinstance(value, int) and not isinstance(value, bool):
            fits = 0 <= value <= _MAX_GID
        elif isinstance(value, str) and value.isascii() and value.isdigit():
            fits = len(value) <= len(str(_MAX_GID)) and int(value) <= _MAX_GID
        else:
            fits = isinstance(value, str) and _GROUP_NAME.fullmatch(value) is not None
        if not fits:
            self.problem("control_group", value, rule)
            return None
        return str(value)

    def metrics_address(self, raw: dict[object, object]) -> tuple[str, int] | None:
        """The Prometheus listen address: "HOST:PORT", or a port on 127.0.0.1; null: off."""
        value = raw.get("metrics")
        if value is None:
            return None
        rule = 'must be a port, or "HOST:PORT" such as "127.0.0.1:9736", or null (off)'
        if isinstance(value, bool):
            self.problem("metrics", value, rule)
            return None
        host, port_text = DEFAULT_METRICS_HOST, value
        if isinstance(value, str) and ":" in value:
            host, _, port_text = value.rpartition(":")
            host = host.strip("[]")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                self.problem("metrics", value, f"{rule}; HOST must be an IP address")
                return None
        try:
            port = int(port_text) if isinstance(port_text, int | str) else -1
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            self.problem("metrics", value, f"{rule}; PORT from 1 to 65535")
            return None
        return host, port

    def integer(
        self,
        obj: dict[object, object],
        path: str,
        key: str,
        *,
        default: int | None,
        lo: int = 1,
        hi: int = _MAX_COUNT,
    ) -> int | None:
        """obj[key] checked as an integer in lo..hi; `default` when absent (None: required)."""
        where = join_path(path, key)
        if key not in obj:
            if default is None:
                self.problem(where, MISSING, f"required: an integer from {lo} to {hi}")
            return default
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.problem(where, value, f"must be an integer from {lo} to {hi}")
            return None
        return value

    def number(
        self,
        obj: dict[object, object],
        path: str,
        key: str,
        default: float,
        *,
        strictly_positive: bool,
    ) -> float | None:
        """obj[key] checked as a finite number > 0 (or >= 0); `default` when absent."""
        if key not in obj:
            return default
        value = obj[key]
        rule = "must be a number greater than 0" if strictly_positive else "must be a number >= 0"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(join_path(path, key), value, rule)
            return None
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < 0 or (strictly_positive and number == 0):
            self.problem(join_path(path, key), value, rule)
            return None
        return number

    def targets(self, value: object, path: str) -> tuple[str, ...] | None:
        """A host setting: one IPv4 address, or a non-empty list of distinct ones."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            self.problem(path, value, "must be an IPv4 address or a non-empty list of them")
            return None
        targets: list[str] = []
        ok = True
        for index, item in enumerate(items):
            where = path if isinstance(value, str) else join_path(path, index)
            why = _target_problem(item) if isinstance(item, str) else "must be a string"
            if why is None and item in targets:
                first = join_path(path, items.index(item))
                why = f"given twice: targets must be distinct (first at {first})"
            if why is not None:
                self.problem(where, item, why)
                ok = False
            else:
                targets.append(item)
        return tuple(targets) if ok else None

    def min_hosts_up(
        self,
        obj: dict[object, object],
        path: str,
        default: int | None,
        targets: tuple[str, ...] | None,
    ) -> int | None:
        """How many targets must answer; at most the number of targets (when known)."""
        hi = len(targets) if targets else _MAX_COUNT
        value = self.integer(obj, path, "min_hosts_up", default=default)
        if value is not None and "min_hosts_up" in obj and value > hi:
            self.problem(
                join_path(path, "min_hosts_up"),
                value,
                f"must be from 1 to the number of targets in host ({hi})",
            )
            return None
        return value

    def uplinks(self, raw: dict[object, object], top: _Top) -> tuple[UplinkConfig, ...] | None:
        interfaces = raw.get("interfaces", MISSING)
        if not isinstance(interfaces, dict) or not interfaces:
            self.problem(
                "interfaces", interfaces, "required: an object mapping interface names to settings"
            )
            return None
        interfaces = {
            name: self.spaced_keys(settings, join_path("interfaces", str(name)), _UPLINK_KEYS)
            if isinstance(settings, dict)
            else settings
            for name, settings in interfaces.items()
        }
        without_host = [
            name
            for name, settings in interfaces.items()
            if not (isinstance(settings, dict) and "host" in settings)
        ]
        if not top.host_given and without_host:
            names = ", ".join(str(name) for name in without_host)
            self.problem(
                "host", MISSING, f"required: interface(s) {names} set no host of their own"
            )
        uplinks = [self.uplink(name, settings, top) for name, settings in interfaces.items()]
        if any(uplink is None for uplink in uplinks):
            return None
        return tuple(uplink for uplink in uplinks if uplink is not None)

    def uplink(self, name: object, settings: object, top: _Top) -> UplinkConfig | None:
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
        self.unknown_keys(settings, path, _UPLINK_KEYS, _TOP_KEYS, "a top-level setting")
        before = len(self.problems)
        metric = self.metric(settings, path)
        count = self.integer(settings, path, "count", default=5)
        max_lost = self.integer(settings, path, "max_lost", default=2, lo=0)
        if count is not None and max_lost is not None and max_lost > count:
            self.problem(
                join_path(path, "max_lost"),
                max_lost,
                f"must be at most count ({count}); max_lost = count means any reply passes",
            )
        max_delay = self.number(settings, path, "max_delay", 1000.0, strictly_positive=True)
        period = (
            self.number(settings, path, "period", 5.0, strictly_positive=True)
            if "period" in settings
            else top.period
        )
        interval = self.integer(settings, path, "interval", default=500)
        timeout = self.integer(settings, path, "timeout", default=1000)
        rise = self.integer(settings, path, "rise", default=1)
        fall = self.integer(settings, path, "fall", default=1)
        if "host" in settings:
            targets = self.targets(settings["host"], join_path(path, "host"))
        else:
            targets = top.targets
        min_hosts_up = self.uplink_min_hosts_up(settings, path, name, top, targets)
        reset_script = self.script(settings, path, "reset_script")
        up_script = self.script(settings, path, "up_script")
        down_script = self.script(settings, path, "down_script")
        grace = self.number(
            settings, path, "reset_script_grace_period", 600.0, strictly_positive=False
        )
        if (
            len(self.problems) > before
            or metric is None
            or count is None
            or max_lost is None
            or interval is None
            or timeout is None
            or rise is None
            or fall is None
            or max_delay is None
            or period is None
            or targets is None
            or min_hosts_up is None
            or grace is None
        ):
            return None
        uplink = UplinkConfig(
            name=name,
            metric=metric,
            targets=targets,
            min_hosts_up=min_hosts_up,
            count=count,
            max_lost=max_lost,
            max_delay_ms=max_delay,
            period=period,
            interval_ms=interval,
            timeout_ms=timeout,
            rise=rise,
            fall=fall,
            reset_script=reset_script,
            reset_script_grace_period=grace,
            up_script=up_script,
            down_script=down_script,
        )
        self.warn_long_round(uplink)
        return uplink

    def metric(self, settings: dict[object, object], path: str) -> int | None:
        metric = self.integer(settings, path, "metric", default=None, lo=0, hi=_MAX_METRIC)
        if metric is None:
            return None
        other = self.metrics.setdefault(metric, path)
        if other != path:
            self.problem(
                join_path(path, "metric"),
                metric,
                f"must differ from {other}.metric: the kernel keeps one default route per "
                "metric in table main, so the two routes would replace each other",
            )
            return None
        return metric

    def uplink_min_hosts_up(
        self,
        settings: dict[object, object],
        path: str,
        name: str,
        top: _Top,
        targets: tuple[str, ...] | None,
    ) -> int | None:
        if "min_hosts_up" in settings:
            return self.min_hosts_up(settings, path, None, targets)
        inherited = top.min_hosts_up
        if inherited is not None and targets is not None and inherited > len(targets):
            self.problem(
                "min_hosts_up",
                inherited,
                f"more than the {len(targets)} target(s) of interface {name}: "
                f"set {path}.min_hosts_up",
            )
            return None
        return inherited

    def script(self, settings: dict[object, object], path: str, key: str) -> str | None:
        value = settings.get(key)
        if value is None:
            return None
        rule = "must be the absolute path of an executable (starting with '/'), then its arguments"
        if not isinstance(value, str) or "\0" in value:
            self.problem(join_path(path, key), value, rule)
            return None
        why = script_text_problem(value)
        if why is not None:
            self.problem(join_path(path, key), value, why)
            return None
        return value

    def warn_long_round(self, uplink: UplinkConfig) -> None:
        round_s = round_seconds(uplink)
        if round_s > uplink.period:
            self.warnings.append(
                f"interfaces.{uplink.name}: a round can last {round_s:g} s "
                f"((count-1)*interval + timeout), longer than its period ({uplink.period:g} s): "
                "the next round then starts at once"
            )


# Settings read once at start-up: a reload that changes them is told to restart instead.
_RESTART_ONLY = (
    "proto",
    "state_file",
    "control_socket",
    "control_group",
    "metrics",
    "gateways_file",
)


def restart_only(old: Config, new: Config) -> list[str]:
    """The settings whose change a reload cannot apply (they need a restart)."""
    return [k for k in _RESTART_ONLY if k != "proto" and getattr(old, k) != getattr(new, k)]


def rejects_reload(old: Config, new: Config) -> str | None:
    """Why a reload of `new` over `old` is rejected as a whole, or None."""
    if old.proto != new.proto:
        return f"proto changed ({old.proto} -> {new.proto}), which needs a restart"
    return None
