"""Every key of the configuration file, declared once: kind, bounds, default, unit, meaning,
and what a reload does with it.

The keys the file may hold, their defaults, their validation (`rules.py`), what
`check-config` shows (`explain.py`), the reload rules (`reload.py`) and the README's tables
(`docs.py`) all come from the two tables below, so a new setting is one entry here plus the
code that uses it (and its field in `model.py`, which takes its default from here).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pingu.domain.config.choices import InitialState, OnExit, WhenAllDown
from pingu.domain.config.kinds import (
    MAX_METRIC,
    Boolean,
    Choice,
    FilePath,
    Group,
    Integer,
    Interfaces,
    Kind,
    ListenAddress,
    Number,
    Script,
    Targets,
)

DEFAULT_STATE_FILE = "/var/lib/pingu/state.json"
DEFAULT_CONTROL_SOCKET = "/run/pingu/control.sock"


class Where(Enum):
    """Where in the file a key may stand."""

    TOP = "top level"
    UPLINK = "per interface"
    BOTH = "top level, for every interface that does not set its own"


class Reload(Enum):
    """What a reload (SIGHUP) does with a changed value."""

    APPLIES = "applies at reload"
    RESTART = "needs a restart: the running value stays until then"
    REJECTS = "needs a restart: a change rejects the reload"


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()  # the default of a key without one


@dataclass(frozen=True)
class Inherited:
    """A top-level setting as an interface's own: its row in the per-interface table."""

    meaning: str
    unit: str = ""  # "": the top level's
    shown: str = ""  # the default column; "": "top-level `KEY`"


@dataclass(frozen=True)
class Setting:
    """One key of the configuration file."""

    key: str
    where: Where
    kind: Kind
    default: Any  # REQUIRED, or what an absent key means (as the model holds it)
    unit: str
    meaning: str  # one line, as in the README's table
    reload: Reload = Reload.APPLIES
    nullable: bool = False  # whether null is a value (none, or off), not a mistake
    model: str = ""  # the model's name for it, when not the key
    shown: str = ""  # the README's default column, when the default alone does not say it
    per_interface: Inherited | None = None  # Where.BOTH: how it reads per interface

    def __post_init__(self) -> None:
        if (self.where is Where.BOTH) != (self.per_interface is not None):
            raise ValueError(f"{self.key}: a setting of both levels, and only one, says how")
        if self.reload is not Reload.APPLIES and self.where is not Where.TOP:
            raise ValueError(f"{self.key}: only the top level's own settings need a restart")

    @property
    def attribute(self) -> str:
        """The name of its field in `Config` or `UplinkConfig`."""
        return self.model or self.key


# Given at the top level for every interface, and per interface, which then wins.
HOST = Setting(
    "host",
    Where.BOTH,
    Targets(),
    REQUIRED,
    "IPv4 or IPv6 address, or a list",
    "the probe target(s); an uplink is managed in each family it has targets of (IPv4, "
    "IPv6 or both), each family judged on its own, with its own route",
    model="targets",
    per_interface=Inherited("per-uplink probe targets", unit="address or list"),
)
PERIOD = Setting(
    "period",
    Where.BOTH,
    Number(),
    5.0,
    "s",
    "default time between the starts of two rounds",
    per_interface=Inherited("time between the starts of two rounds on this uplink"),
)
MIN_HOSTS_UP = Setting(
    "min_hosts_up",
    Where.BOTH,
    Integer(),
    1,
    "targets",
    "an uplink passes a round when at least this many targets pass, in each family "
    "(capped at the number of that family's targets)",
    per_interface=Inherited("per-uplink quorum", shown="top-level value"),
)
FLUSH_CONNTRACK = Setting(
    "flush_conntrack",
    Where.BOTH,
    Boolean(),
    True,
    "`true` / `false`",
    "when traffic leaves an uplink (its route goes, or a better one comes back), delete the "
    "conntrack entries of flows source-NATed to its address or sent from it, so that "
    "their next packet is NATed and routed anew (see [Traffic after a switch]"
    "(#traffic-after-a-switch))",
    per_interface=Inherited("per-uplink `flush_conntrack`"),
)
KILL_SOCKETS = Setting(
    "kill_sockets",
    Where.BOTH,
    Boolean(),
    True,
    "`true` / `false`",
    "at the same moments, destroy the box's own TCP connections from the uplink's address "
    "(as `ss -K` does): their programs get an error at once and reconnect over the new "
    "uplink. Listening sockets are never touched",
    per_interface=Inherited("per-uplink `kill_sockets`"),
)
FLOW_QUIET_PERIOD = Setting(
    "flow_quiet_period",
    Where.BOTH,
    Number(zero_allowed=True),
    0.0,
    "s",
    "wait this long after traffic left an uplink before ending its flows; if traffic is "
    "back on it by then, nothing is ended (a flap shorter than this kills nothing)",
    per_interface=Inherited("per-uplink `flow_quiet_period`"),
)
INTERFACES = Setting(
    "interfaces",
    Where.TOP,
    Interfaces(),
    REQUIRED,
    "object",
    "uplink name -> settings below",
    model="uplinks",
)

# In the order of the file's known keys, which is how check-config shows them.
TOP_LEVEL: tuple[Setting, ...] = (
    HOST,
    Setting(
        "proto",
        Where.TOP,
        Integer(1, 255),
        136,
        "1..255",
        "protocol number of pingu's own routes. Refused: 0-4 (unspec, redirect, kernel, boot, "
        "static), 9 (ra), 16 (dhcp) — pingu would take those routes for its own. Warned: "
        "numbers of well-known routing daemons (zebra, bird, bgp, ospf, ...)",
        reload=Reload.REJECTS,
    ),
    PERIOD,
    MIN_HOSTS_UP,
    Setting(
        "initial_state",
        Where.TOP,
        Choice(InitialState),
        InitialState.UP,
        '`"up"` / `"down"`',
        "how an uplink starts before its first verdict: `up` keeps connectivity while pingu "
        "learns, `down` is py-pingu's behaviour (no route until a round passes)",
    ),
    Setting(
        "on_exit",
        Where.TOP,
        Choice(OnExit),
        OnExit.RESTORE,
        '`"restore"` / `"keep"`',
        "on SIGTERM/SIGINT: `restore` removes pingu's routes and puts the captured ones back "
        "as they were; `keep` leaves pingu's routes in place",
    ),
    Setting(
        "when_all_down",
        Where.TOP,
        Choice(WhenAllDown),
        WhenAllDown.NONE,
        '`"none"` / `"keep_best"`',
        "with every uplink down: `none` leaves no default route (py-pingu); `keep_best` keeps "
        "the route of the uplink that lost the fewest echoes in its last round (ties: the one "
        "whose route is still in the table, then the lower metric), so an unreachable probe "
        "target cannot cut the box off; the kept route is in before the failed one goes. "
        "Logged at ERROR either way",
    ),
    Setting(
        "state_file",
        Where.TOP,
        FilePath(absolute=True),
        DEFAULT_STATE_FILE,
        "absolute path or `null`",
        "what survives a restart or `kill -9` (see below); `null`: nothing is kept",
        reload=Reload.RESTART,
        nullable=True,
    ),
    Setting(
        "script_timeout",
        Where.TOP,
        Number(),
        60.0,
        "s",
        "a reset, up or down script still running after this is killed (with its process group)",
    ),
    Setting(
        "control_socket",
        Where.TOP,
        FilePath(absolute=True),
        DEFAULT_CONTROL_SOCKET,
        "absolute path or `null`",
        "the Unix socket `pingu status` asks",
        reload=Reload.RESTART,
        nullable=True,
    ),
    Setting(
        "control_group",
        Where.TOP,
        Group(),
        None,
        "group name or number",
        "lets this group use the control socket (mode 0660); by default it is root-only (0600)",
        reload=Reload.RESTART,
        nullable=True,
    ),
    Setting(
        "metrics",
        Where.TOP,
        ListenAddress(),
        None,
        'port, or `"HOST:PORT"`',
        "Prometheus endpoint; a bare port listens on 127.0.0.1",
        reload=Reload.RESTART,
        nullable=True,
        shown="`null` (off)",
    ),
    Setting(
        "gateways_file",
        Where.TOP,
        FilePath(absolute=False),
        None,
        "path (relative: to the directory pingu starts in)",
        'py-pingu\'s file of last gateways (`"./gw.json"`): read at start-up, written as '
        "gateways change (see [py-pingu's gateways file](#py-pingus-gateways-file))",
        reload=Reload.RESTART,
        nullable=True,
    ),
    Setting(
        "table_check_interval",
        Where.TOP,
        Number(),
        10.0,
        "s, or `null` (off)",
        "how often pingu reads table main's default routes whole and repairs what no "
        "notification told it of (a route flushed with an address, replaced, lost in an "
        "overflow)",
        nullable=True,
    ),
    FLUSH_CONNTRACK,
    KILL_SOCKETS,
    FLOW_QUIET_PERIOD,
    INTERFACES,
)

# In the order of an interface's known keys; check-config shows them sorted.
PER_INTERFACE: tuple[Setting, ...] = (
    Setting(
        "metric",
        Where.UPLINK,
        Integer(0, MAX_METRIC),
        REQUIRED,
        "0..2^32-1",
        "metric of the uplink's default route; unique per uplink",
    ),
    Setting("count", Where.UPLINK, Integer(), 5, "echoes", "echoes per target per round"),
    Setting(
        "max_lost",
        Where.UPLINK,
        Integer(0),
        2,
        "echoes",
        "a target fails when more are lost (0..count; `count` means any reply passes: a round "
        "with none still fails)",
    ),
    Setting(
        "max_delay",
        Where.UPLINK,
        Number(),
        1000.0,
        "ms",
        "a target fails when the average delay of its replies is not below this",
        model="max_delay_ms",
    ),
    PERIOD,
    Setting(
        "interval",
        Where.UPLINK,
        Integer(),
        500,
        "ms",
        "spacing of the echoes of a round",
        model="interval_ms",
    ),
    Setting(
        "timeout",
        Where.UPLINK,
        Integer(),
        1000,
        "ms",
        "how long each echo's reply is waited for",
        model="timeout_ms",
    ),
    Setting(
        "rise",
        Where.UPLINK,
        Integer(),
        1,
        "rounds",
        "passed rounds in a row to bring a down uplink back",
    ),
    Setting(
        "fall",
        Where.UPLINK,
        Integer(),
        1,
        "rounds",
        "failed rounds in a row to take an up uplink down",
    ),
    HOST,
    MIN_HOSTS_UP,
    Setting(
        "reset_script",
        Where.UPLINK,
        Script(),
        None,
        "absolute path, then arguments",
        "run when the uplink is found faulty; must be a regular executable file that only root "
        "can change (see [Security](#security))",
        nullable=True,
        shown="none",
    ),
    Setting(
        "reset_script_grace_period",
        Where.UPLINK,
        Number(zero_allowed=True),
        600.0,
        "s",
        "at least this long between two runs of the reset script",
    ),
    Setting(
        "up_script",
        Where.UPLINK,
        Script(),
        None,
        "absolute path, then arguments",
        "run when the uplink is judged healthy again (down or rising -> up); same rules as "
        "`reset_script`",
        nullable=True,
        shown="none",
    ),
    Setting(
        "down_script",
        Where.UPLINK,
        Script(),
        None,
        "absolute path, then arguments",
        "run when the uplink is judged down (up or failing -> down, carrier loss, interface "
        "gone); same rules as `reset_script`",
        nullable=True,
        shown="none",
    ),
    FLUSH_CONNTRACK,
    KILL_SOCKETS,
    FLOW_QUIET_PERIOD,
)

TOP_KEYS = tuple(setting.key for setting in TOP_LEVEL)
UPLINK_KEYS = tuple(setting.key for setting in PER_INTERFACE)
SCRIPT_KEYS = tuple(setting.key for setting in PER_INTERFACE if isinstance(setting.kind, Script))
_BY_KEY = {setting.key: setting for setting in TOP_LEVEL + PER_INTERFACE}


def setting(key: str) -> Setting:
    """The setting of the file's `key`, at either level."""
    return _BY_KEY[key]


def default(key: str) -> Any:
    """The default of the file's `key`: the model's field defaults are taken from here."""
    return _BY_KEY[key].default
