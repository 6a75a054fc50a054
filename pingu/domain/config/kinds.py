"""The kinds of value a setting holds: how each is read from parsed JSON, checked, and shown.

A kind knows one value alone. What depends on another setting (max_lost against count, a
metric against the other uplinks') is a rule of `rules.py`; whether a key is required,
has a default or may be null is the table's business (`settings.py`).
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pingu.domain.errors import ConfigProblem

# Large enough for any sane setting, small enough that the timing arithmetic stays finite.
MAX_COUNT = 2**31 - 1
MAX_METRIC = 2**32 - 1
DEFAULT_METRICS_HOST = "127.0.0.1"
# A gid that chown can set (2^32 - 1 means "leave as is"); a name as groupadd allows one.
_MAX_GID = 2**32 - 2
_GROUP_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?", re.ASCII)
_GROUP_NAME_RULE = "up to 32 ASCII letters, digits, '_', '.' and '-' (not '-' first)"
# What only a shell would make of a command line: pingu runs scripts without one.
_SHELL_CHARACTERS = "|&;<>()$`*?[]\n"
_SCRIPT_RULE = "the absolute path of an executable (starting with '/'), then its arguments"


def join_path(parent: str, key: str | int) -> str:
    """The path of `key` inside `parent`, as problems name it: `interfaces.eno2.host[1]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


@dataclass(frozen=True)
class Rejected:
    """What a value is instead of a setting when it breaks its kind's rule."""

    problems: tuple[ConfigProblem, ...]


def rejected(path: str, value: object, rule: str) -> Rejected:
    return Rejected((ConfigProblem(path, value, rule),))


class Kind:
    """How one setting's values are read from the file, checked, and shown back."""

    @property
    def expected(self) -> str:
        """What a value must be, after "must be" or "required:"."""
        raise NotImplementedError

    def read(self, value: object, path: str) -> object:
        """`value` (never null: the table decides what null means) as the model holds it, or
        Rejected."""
        raise NotImplementedError

    def show(self, value: Any) -> object:
        """A value of the model as the file would say it (`check-config`, the README)."""
        return value

    def must_be(self) -> str:
        return f"must be {self.expected}"


@dataclass(frozen=True)
class Integer(Kind):
    lo: int = 1
    hi: int = MAX_COUNT

    @property
    def expected(self) -> str:
        return f"an integer from {self.lo} to {self.hi}"

    def read(self, value: object, path: str) -> object:
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            return rejected(path, value, self.must_be())
        return value


@dataclass(frozen=True)
class Boolean(Kind):
    """`true` or `false` (not 0 or 1, nor a string)."""

    @property
    def expected(self) -> str:
        return "true or false"

    def read(self, value: object, path: str) -> object:
        if not isinstance(value, bool):
            return rejected(path, value, self.must_be())
        return value


@dataclass(frozen=True)
class Number(Kind):
    """A finite number, read as a float; greater than 0 unless zero is allowed."""

    zero_allowed: bool = False

    @property
    def expected(self) -> str:
        return "a number >= 0" if self.zero_allowed else "a number greater than 0"

    def read(self, value: object, path: str) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return rejected(path, value, self.must_be())
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < 0 or (number == 0 and not self.zero_allowed):
            return rejected(path, value, self.must_be())
        return number

    def show(self, value: Any) -> object:
        return plain(value)


def plain(number: float) -> float | int:
    """5.0 reads better as 5 in what the operator sees."""
    return int(number) if number.is_integer() else number


@dataclass(frozen=True)
class Choice(Kind):
    """One of the values of an Enum, read as its member."""

    options: type[Enum]

    @property
    def expected(self) -> str:
        return " or ".join(f'"{option.value}"' for option in self.options)

    def read(self, value: object, path: str) -> object:
        for option in self.options:
            if value == option.value:
                return option
        return rejected(path, value, self.must_be())

    def show(self, value: Any) -> object:
        return value.value


@dataclass(frozen=True)
class FilePath(Kind):
    """The path of a file (not of a directory); relative ones are the adapter's to resolve."""

    absolute: bool

    @property
    def expected(self) -> str:
        return f"{'an absolute' if self.absolute else 'a'} file path, or null to do without"

    def read(self, value: object, path: str) -> object:
        if (
            not isinstance(value, str)
            or not value
            or value.endswith("/")
            or "\0" in value
            or (self.absolute and not value.startswith("/"))
        ):
            return rejected(path, value, self.must_be())
        return value


@dataclass(frozen=True)
class Group(Kind):
    """A group, by name or number, kept as text: the adapter looks it up."""

    @property
    def expected(self) -> str:
        return (
            f"a group name or number, or null: a name of {_GROUP_NAME_RULE}, "
            f"or a number from 0 to {_MAX_GID}"
        )

    def read(self, value: object, path: str) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            fits = 0 <= value <= _MAX_GID
        elif isinstance(value, str) and value.isascii() and value.isdigit():
            fits = len(value) <= len(str(_MAX_GID)) and int(value) <= _MAX_GID
        else:
            fits = isinstance(value, str) and _GROUP_NAME.fullmatch(value) is not None
        if not fits:
            return rejected(path, value, self.must_be())
        return str(value)


@dataclass(frozen=True)
class ListenAddress(Kind):
    """Where a server listens: "HOST:PORT", or a port on DEFAULT_METRICS_HOST."""

    @property
    def expected(self) -> str:
        return 'a port, or "HOST:PORT" such as "127.0.0.1:9736", or null (off)'

    def read(self, value: object, path: str) -> object:
        if isinstance(value, bool):
            return rejected(path, value, self.must_be())
        host, port_text = DEFAULT_METRICS_HOST, value
        if isinstance(value, str) and ":" in value:
            host, _, port_text = value.rpartition(":")
            host = host.strip("[]")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return rejected(path, value, f"{self.must_be()}; HOST must be an IP address")
        try:
            port = int(port_text) if isinstance(port_text, int | str) else -1
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            return rejected(path, value, f"{self.must_be()}; PORT from 1 to 65535")
        return host, port

    def show(self, value: Any) -> object:
        host, port = value
        return f"{host}:{port}"


@dataclass(frozen=True)
class Targets(Kind):
    """Probe targets: one IPv4 or IPv6 address, or a non-empty list of distinct ones, as a
    tuple (IPv6 ones written in their canonical form)."""

    @property
    def expected(self) -> str:
        return "an IPv4 or IPv6 address, or a non-empty list of them"

    def read(self, value: object, path: str) -> object:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            return rejected(path, value, self.must_be())
        targets: list[str] = []
        problems: list[ConfigProblem] = []
        for index, item in enumerate(items):
            where = path if isinstance(value, str) else join_path(path, index)
            why = _target_problem(item) if isinstance(item, str) else "must be a string"
            canonical = _canonical(item) if why is None and isinstance(item, str) else item
            if why is None and canonical in targets:
                first = join_path(path, targets.index(canonical))
                why = f"given twice: targets must be distinct (first at {first})"
            if why is not None:
                problems.append(ConfigProblem(where, item, why))
            else:
                targets.append(canonical)
        return Rejected(tuple(problems)) if problems else tuple(targets)

    def show(self, value: Any) -> object:
        return list(value)


def _canonical(text: str) -> str:
    """IPv4 as written (validated without leading zeros); IPv6 compressed, lower case."""
    return str(ipaddress.ip_address(text))


def _target_problem(text: str) -> str | None:
    """Why `text` cannot be a probe target, or None."""
    if ":" in text:
        return _ipv6_target_problem(text)
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return (
            "must be an IPv4 address such as 192.0.2.1 (no leading zeros), "
            "or an IPv6 address such as 2001:db8::1"
        )
    if address.is_unspecified:
        return "0.0.0.0 is not a host that can answer echoes"
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address cannot be a probe target"
    if address.is_multicast:
        return "a multicast address cannot be a probe target"
    if address.is_loopback:
        return "a loopback address never answers through a gateway"
    return None


def _ipv6_target_problem(text: str) -> str | None:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return "must be an IPv6 address such as 2001:db8::1 (or an IPv4 address)"
    if address.is_unspecified:
        return ":: is not a host that can answer echoes"
    if address.is_multicast:
        return "a multicast address cannot be a probe target"
    if address.is_loopback:
        return "a loopback address never answers through a gateway"
    if address.is_link_local:
        return "a link-local address is not reached through a gateway: use a global one"
    if address.ipv4_mapped is not None:
        return f"an IPv4-mapped address: write the IPv4 address {address.ipv4_mapped} instead"
    return None


@dataclass(frozen=True)
class Script(Kind):
    """A program and its arguments, run without a shell (see `script_argv`)."""

    @property
    def expected(self) -> str:
        return _SCRIPT_RULE

    def read(self, value: object, path: str) -> object:
        if not isinstance(value, str) or "\0" in value:
            return rejected(path, value, self.must_be())
        why = script_text_problem(value)
        if why is not None:
            return rejected(path, value, why)
        return value


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
        return f"must be {_SCRIPT_RULE}"
    if not argv[0].startswith("/"):
        return "must start with the absolute path of an executable (starting with '/')"
    return None


@dataclass(frozen=True)
class Interfaces(Kind):
    """The map of uplink names to their settings, which `rules.py` reads one by one."""

    @property
    def expected(self) -> str:
        return "an object mapping interface names to settings"

    def read(self, value: object, path: str) -> object:
        if not isinstance(value, dict) or not value:
            return rejected(path, value, f"required: {self.expected}")
        return value
