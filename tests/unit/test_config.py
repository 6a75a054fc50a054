"""build_config: defaults, every rule, all problems at once; timing bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingu.domain.config import (
    MISSING,
    Config,
    InitialState,
    OnExit,
    UplinkConfig,
    WhenAllDown,
    build_config,
    detection_bounds,
    effective_settings,
    join_path,
    round_seconds,
    script_argv,
)
from pingu.domain.errors import ConfigError, ConfigProblem
from pingu.domain.model import Family


def minimal(**top: object) -> dict[str, object]:
    raw: dict[str, object] = {"host": "192.0.2.1", "interfaces": {"wan1": {"metric": 100}}}
    raw.update(top)
    return raw


def with_uplink(**settings: object) -> dict[str, object]:
    return minimal(interfaces={"wan1": {"metric": 100, **settings}})


def problems(raw: object) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        build_config(raw)
    return list(caught.value.problems)


def paths(raw: object) -> list[str]:
    return [p.path for p in problems(raw)]


def only_problem(raw: object) -> ConfigProblem:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


# --- defaults --------------------------------------------------------------------------


def test_minimal_config_gets_the_documented_defaults():
    config = build_config(minimal())

    assert config == Config(
        proto=136,
        uplinks=(UplinkConfig(name="wan1", metric=100, targets=("192.0.2.1",)),),
        initial_state=InitialState.UP,
    )
    uplink = config.uplinks[0]
    assert (uplink.count, uplink.max_lost, uplink.max_delay_ms) == (5, 2, 1000.0)
    assert (uplink.period, uplink.interval_ms, uplink.timeout_ms) == (5.0, 500, 1000)
    assert (uplink.rise, uplink.fall, uplink.min_hosts_up) == (1, 1, 1)
    assert uplink.reset_script is None
    assert uplink.reset_script_grace_period == 600.0
    assert config.warnings == ()


def test_every_key_is_mapped_to_the_model():
    raw = {
        "host": "192.0.2.1",
        "proto": 200,
        "period": 7,
        "min_hosts_up": 1,
        "initial_state": "down",
        "interfaces": {
            "wan1": {
                "metric": 0,
                "count": 4,
                "max_lost": 3,
                "max_delay": 150.5,
                "period": 2.5,
                "interval": 200,
                "timeout": 800,
                "rise": 3,
                "fall": 2,
                "host": ["198.51.100.1", "203.0.113.9"],
                "min_hosts_up": 2,
                "reset_script": "/usr/local/sbin/reset-modem",
                "reset_script_grace_period": 0,
            },
            "wan2": {"metric": 2**32 - 1},
        },
    }

    config = build_config(raw)

    assert config.proto == 200
    assert config.initial_state is InitialState.DOWN
    assert config.uplinks[0] == UplinkConfig(
        name="wan1",
        metric=0,
        targets=("198.51.100.1", "203.0.113.9"),
        min_hosts_up=2,
        count=4,
        max_lost=3,
        max_delay_ms=150.5,
        period=2.5,
        interval_ms=200,
        timeout_ms=800,
        rise=3,
        fall=2,
        reset_script="/usr/local/sbin/reset-modem",
        reset_script_grace_period=0.0,
    )
    wan2 = config.uplink("wan2")
    assert wan2 is not None
    assert wan2.period == 7.0
    assert wan2.targets == ("192.0.2.1",)
    assert config.uplink("wan3") is None


def test_uplinks_keep_the_file_order():
    raw = minimal(interfaces={"b": {"metric": 1}, "a": {"metric": 2}, "c": {"metric": 3}})
    assert [u.name for u in build_config(raw).uplinks] == ["b", "a", "c"]


def test_top_host_not_needed_when_every_interface_has_its_own():
    raw = {"interfaces": {"wan1": {"metric": 1, "host": "192.0.2.1"}}}
    assert build_config(raw).uplinks[0].targets == ("192.0.2.1",)


def test_interface_min_hosts_up_inherits_the_top_one():
    raw = {
        "host": ["192.0.2.1", "192.0.2.2"],
        "min_hosts_up": 2,
        "interfaces": {"wan1": {"metric": 1}},
    }
    assert build_config(raw).uplinks[0].min_hosts_up == 2


# --- structure -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [[], "x", None, 3])
def test_top_level_must_be_an_object(raw):
    problem = only_problem(raw)
    assert problem.path == ""
    assert "JSON object" in problem.rule


@pytest.mark.parametrize("interfaces", [MISSING, {}, [], "wan1"])
def test_interfaces_is_required_and_non_empty(interfaces):
    raw = {"host": "192.0.2.1"}
    if interfaces is not MISSING:
        raw["interfaces"] = interfaces
    problem = only_problem(raw)
    assert problem.path == "interfaces"
    assert "required" in problem.rule


def test_interface_settings_must_be_an_object():
    problem = only_problem(minimal(interfaces={"wan1": 100}))
    assert problem.path == "interfaces.wan1"
    assert "object" in problem.rule


def test_missing_value_reads_as_missing():
    assert repr(MISSING) == "(missing)"
    problem = only_problem(minimal(interfaces={"wan1": {}}))
    assert problem.path == "interfaces.wan1.metric"
    assert problem.value is MISSING
    assert "required" in problem.rule


def test_non_string_keys_are_rejected():
    raw: dict[object, object] = {1: 2}
    raw.update(minimal())
    assert paths(raw) == [""]
    assert paths(minimal(interfaces={1: {"metric": 1}})) == ["interfaces"]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("eth0", True),
        ("eth0.100", True),
        ("a" * 15, True),
        ("a" * 16, False),
        ("", False),
        (".", False),
        ("..", False),
        ("wan/1", False),
        ("wan 1", False),
        ("eth0:1", False),
        ("wan\t", False),
    ],
)
def test_interface_names_follow_the_kernel_rules(name, ok):
    raw = minimal(interfaces={name: {"metric": 1}})
    if ok:
        assert build_config(raw).uplinks[0].name == name
    else:
        assert paths(raw) == [f"interfaces.{name}"]


# --- unknown keys ----------------------------------------------------------------------


def test_key_with_a_trailing_space_is_read_as_the_key_it_names_with_a_warning():
    # The seed README's own example has "reset_script_grace_period " (py-pingu ignored it).
    config = build_config(with_uplink(**{"reset_script_grace_period ": 60}))
    assert config.uplinks[0].reset_script_grace_period == 60.0
    (warning,) = config.warnings
    assert "'interfaces.wan1.reset_script_grace_period ' read as" in warning
    assert "interfaces.wan1.reset_script_grace_period (py-pingu ignored" in warning


def test_key_with_spaces_beside_the_same_key_is_an_error_that_names_both():
    problem = only_problem(
        with_uplink(**{"reset_script_grace_period ": 60, "reset_script_grace_period": 5})
    )
    assert problem.path == "interfaces.wan1.reset_script_grace_period "
    assert "did you mean 'reset_script_grace_period'?" in problem.rule
    assert "spaces" in problem.rule


def test_top_level_key_with_spaces_is_read_too():
    config = build_config({" host": "192.0.2.1", "interfaces ": {"wan1": {"metric": 1}}})
    assert config.uplinks[0].targets == ("192.0.2.1",)
    assert len(config.warnings) == 2


def test_unknown_key_in_other_case_suggests_the_real_one():
    problem = only_problem(minimal(Proto=136))
    assert problem.path == "Proto"
    assert "did you mean 'proto'?" in problem.rule


def test_misspelt_key_gets_the_closest_suggestion():
    problem = only_problem(with_uplink(max_los=1))
    assert "did you mean 'max_lost'?" in problem.rule


def test_key_at_the_wrong_level_says_where_it_belongs():
    top = only_problem(minimal(count=3))
    assert "interface setting" in top.rule
    inner = only_problem(with_uplink(proto=3))
    assert inner.path == "interfaces.wan1.proto"
    assert "top-level" in inner.rule


def test_unknown_key_without_anything_close_lists_the_known_keys():
    problem = only_problem(with_uplink(zzzzzz=1))
    assert "known keys:" in problem.rule
    assert "reset_script_grace_period" in problem.rule


# --- proto -----------------------------------------------------------------------------


@pytest.mark.parametrize("proto", [0, 256, -1, True, 136.0, "136", None])
def test_proto_must_be_an_integer_from_1_to_255(proto):
    problem = only_problem(minimal(proto=proto))
    assert problem == ConfigProblem("proto", proto, "must be an integer from 1 to 255")


@pytest.mark.parametrize(
    ("proto", "name"),
    [(1, "redirect"), (2, "kernel"), (3, "boot"), (4, "static"), (9, "ra"), (16, "dhcp")],
)
def test_proto_of_kernel_and_clients_is_an_error(proto, name):
    problem = only_problem(minimal(proto=proto))
    assert problem.path == "proto"
    assert name in problem.rule
    assert "its own" in problem.rule


@pytest.mark.parametrize(
    ("proto", "name"), [(11, "zebra"), (12, "bird"), (186, "bgp"), (188, "ospf")]
)
def test_proto_of_routing_daemons_is_a_warning(proto, name):
    config = build_config(minimal(proto=proto))
    assert config.proto == proto
    assert len(config.warnings) == 1
    assert name in config.warnings[0]


def test_initial_state_must_be_up_or_down():
    assert build_config(minimal(initial_state="down")).initial_state is InitialState.DOWN
    problem = only_problem(minimal(initial_state="UP"))
    assert problem.path == "initial_state"


# --- host ------------------------------------------------------------------------------


def test_host_is_required_when_an_interface_has_none():
    raw = {
        "interfaces": {
            "wan1": {"metric": 1, "host": "192.0.2.1"},
            "wan2": {"metric": 2},
            "wan3": {"metric": 3},
        }
    }
    problem = only_problem(raw)
    assert problem.path == "host"
    assert "wan2, wan3" in problem.rule


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("8.8.8.08", "IPv4 address"),
        ("192.0.2", "IPv4 address"),
        ("2001:db8::g", "IPv6 address"),
        ("::", "::"),
        ("ff02::1", "multicast"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("::ffff:192.0.2.1", "write the IPv4 address 192.0.2.1"),
        ("example.org", "IPv4 address"),
        (" 192.0.2.1", "IPv4 address"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("127.0.0.1", "loopback"),
    ],
)
def test_host_must_be_a_usable_address(host, why):
    problem = only_problem(minimal(host=host))
    assert problem.path == "host"
    assert problem.value == host
    assert why in problem.rule


@pytest.mark.parametrize("host", [[], 17, None, {"a": 1}])
def test_host_must_be_an_address_or_a_non_empty_list(host):
    assert paths(minimal(host=host)) == ["host"]


def test_host_list_items_are_checked_one_by_one():
    raw = minimal(host=["192.0.2.1", "x", 5, "192.0.2.1", "198.51.100.7"])
    found = problems(raw)
    assert [p.path for p in found] == ["host[1]", "host[2]", "host[3]"]
    assert "string" in found[1].rule
    assert "distinct" in found[2].rule
    assert "host[0]" in found[2].rule


def test_interface_host_overrides_and_is_checked_with_its_path():
    config = build_config(with_uplink(host=["198.51.100.1"]))
    assert config.uplinks[0].targets == ("198.51.100.1",)
    assert paths(with_uplink(host=["198.51.100.1", "nope"])) == ["interfaces.wan1.host[1]"]


def test_min_hosts_up_cannot_exceed_the_targets():
    top = only_problem(minimal(host=["192.0.2.1", "192.0.2.2"], min_hosts_up=3))
    assert top.path == "min_hosts_up"
    assert "(2)" in top.rule
    inner = only_problem(with_uplink(host=["192.0.2.1"], min_hosts_up=2))
    assert inner.path == "interfaces.wan1.min_hosts_up"
    assert paths(with_uplink(min_hosts_up=0)) == ["interfaces.wan1.min_hosts_up"]


def test_inherited_min_hosts_up_checked_against_the_interface_targets():
    raw = {"min_hosts_up": 2, "interfaces": {"wan1": {"metric": 1, "host": "192.0.2.1"}}}
    problem = only_problem(raw)
    assert problem.path == "min_hosts_up"
    assert "interfaces.wan1.min_hosts_up" in problem.rule


# --- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("metric", -1),
        ("metric", 2**32),
        ("metric", 1.0),
        ("metric", True),
        ("count", 0),
        ("count", True),
        ("count", "5"),
        ("count", 2**31),
        ("max_lost", -1),
        ("interval", 0),
        ("interval", 250.0),
        ("timeout", 0),
        ("rise", 0),
        ("fall", False),
    ],
)
def test_integer_settings_reject_wrong_values(key, value):
    problem = only_problem(with_uplink(**{key: value}))
    assert problem.path == f"interfaces.wan1.{key}"
    assert problem.value == value
    assert problem.rule.startswith("must be an integer from")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_delay", 0),
        ("max_delay", -5),
        ("max_delay", True),
        ("max_delay", "100"),
        ("period", 0.0),
        ("period", math.inf),
        ("period", math.nan),
        ("period", 10**400),
        ("reset_script_grace_period", -1),
        ("reset_script_grace_period", None),
    ],
)
def test_number_settings_reject_wrong_values(key, value):
    problem = only_problem(with_uplink(**{key: value}))
    assert problem.path == f"interfaces.wan1.{key}"
    assert problem.rule.startswith("must be a number")


def test_top_period_is_checked_and_inherited():
    assert paths(minimal(period=0)) == ["period"]
    assert build_config(minimal(period=30)).uplinks[0].period == 30.0


def test_max_lost_must_be_at_most_count():
    problem = only_problem(with_uplink(count=3, max_lost=4))
    assert problem == ConfigProblem(
        "interfaces.wan1.max_lost",
        4,
        "must be at most count (3); max_lost = count means any reply passes",
    )
    assert build_config(with_uplink(count=3, max_lost=2)).uplinks[0].max_lost == 2


def test_max_lost_equal_to_count_means_any_reply_passes():
    # It worked in py-pingu: a round with no reply at all still fails (see test_verdict).
    assert build_config(with_uplink(count=3, max_lost=3)).uplinks[0].max_lost == 3


def test_max_lost_default_is_checked_against_a_small_count():
    assert paths(with_uplink(count=1)) == ["interfaces.wan1.max_lost"]
    assert build_config(with_uplink(count=2)).uplinks[0].max_lost == 2


def test_two_interfaces_with_the_same_metric_are_an_error():
    raw = minimal(interfaces={"wan1": {"metric": 100}, "wan2": {"metric": 100}})
    problem = only_problem(raw)
    assert problem.path == "interfaces.wan2.metric"
    assert "interfaces.wan1.metric" in problem.rule
    assert "one default route per metric" in problem.rule


@pytest.mark.parametrize("script", ["reset.sh", "", 5, "/bin/a\0b", "  ", "reset.sh /x", "~/r"])
def test_reset_script_must_be_an_absolute_path(script):
    problem = only_problem(with_uplink(reset_script=script))
    assert problem.path == "interfaces.wan1.reset_script"
    assert "absolute" in problem.rule


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ("/usr/local/sbin/reset-modem wwan0", ("/usr/local/sbin/reset-modem", "wwan0")),
        ("/sbin/reset  'my modem' \"x y\"", ("/sbin/reset", "my modem", "x y")),
        ("/sbin/reset", ("/sbin/reset",)),
        ("/sbin/reset a\\ b", ("/sbin/reset", "a b")),
    ],
)
def test_a_script_with_arguments_is_split_into_argv_without_a_shell(text, argv):
    uplink = build_config(with_uplink(reset_script=text)).uplinks[0]
    assert uplink.reset_script == text
    assert script_argv(text) == argv


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/sbin/reset | logger", "'|'"),
        ("/sbin/reset $IFACE", "'$'"),
        ("/sbin/reset; reboot", "';'"),
        ("/sbin/reset > /tmp/log", "'>'"),
        ("/sbin/reset 2>&1", "'&' '>'"),
        ("/sbin/reset `id`", "'`'"),
        ("/sbin/reset *.conf", "'*'"),
        ('/sbin/reset "$(id)"', "'$' '(' ')'"),
    ],
)
def test_a_script_that_needs_a_shell_is_refused_with_a_way_out(text, shown):
    problem = only_problem(with_uplink(up_script=text))
    assert problem.path == "interfaces.wan1.up_script"
    assert f"contains {shown}, which needs a shell" in problem.rule
    assert "put the command in a script of its own" in problem.rule


@pytest.mark.parametrize("text", ["/sbin/reset 'unclosed", "/sbin/reset #comment"])
def test_a_script_that_cannot_be_split_is_refused(text):
    problem = only_problem(with_uplink(down_script=text))
    assert problem.path == "interfaces.wan1.down_script"


def test_null_reset_script_means_none():
    assert build_config(with_uplink(reset_script=None)).uplinks[0].reset_script is None


def test_all_problems_are_reported_at_once():
    raw = {
        "proto": 0,
        "host": "nope",
        "interfaces": {
            "wan1": {"metric": 1, "count": 0, "reset_script_grace_peroid": 5},
            "wan2": {"metric": 1, "max_delay": -1},
            "bad name": {"metric": 7},
        },
    }
    assert paths(raw) == [
        "proto",
        "host",
        "interfaces.wan1.reset_script_grace_peroid",
        "interfaces.wan1.count",
        "interfaces.wan2.metric",
        "interfaces.wan2.max_delay",
        "interfaces.bad name",
    ]


def test_config_error_message_lists_every_problem():
    with pytest.raises(ConfigError) as caught:
        build_config(with_uplink(count=0, rise=0))
    assert str(caught.value).splitlines() == [
        "interfaces.wan1.count: 0: must be an integer from 1 to 2147483647",
        "interfaces.wan1.rise: 0: must be an integer from 1 to 2147483647",
    ]


# --- warnings --------------------------------------------------------------------------


def test_round_longer_than_period_is_a_warning():
    config = build_config(with_uplink(count=10, interval=1000, timeout=2000, period=5))
    assert len(config.warnings) == 1
    warning = config.warnings[0]
    assert "interfaces.wan1" in warning
    assert "11 s" in warning
    assert "starts at once" in warning


def test_round_exactly_as_long_as_period_is_fine():
    # (5-1)*1000 + 1000 = 5000 ms = period
    assert build_config(with_uplink(interval=1000, period=5)).warnings == ()


# --- timing bounds ---------------------------------------------------------------------


def test_detection_bounds_with_defaults():
    uplink = UplinkConfig(name="wan1", metric=1, targets=("192.0.2.1",))
    # L = (4*500 + 1000)/1000 = 3; P = 5; F = (2*500 + 1000)/1000 = 2
    assert round_seconds(uplink) == 3.0
    assert detection_bounds(uplink) == (7.0, 8.0)


def test_detection_bounds_with_hysteresis_and_a_long_round():
    uplink = UplinkConfig(
        name="wan1",
        metric=1,
        targets=("192.0.2.1",),
        count=10,
        max_lost=3,
        interval_ms=1000,
        timeout_ms=2000,
        period=5.0,
        rise=3,
        fall=2,
    )
    # L = 11, P = max(5, 11) = 11, F = (3*1000 + 2000)/1000 = 5
    assert detection_bounds(uplink) == (2 * 11 + 5, 3 * 11 + 11)


@st.composite
def uplinks(draw: st.DrawFn) -> UplinkConfig:
    count = draw(st.integers(1, 50))
    return UplinkConfig(
        name="wan1",
        metric=1,
        targets=("192.0.2.1",),
        count=count,
        max_lost=draw(st.integers(0, count - 1)),
        interval_ms=draw(st.integers(1, 5000)),
        timeout_ms=draw(st.integers(1, 5000)),
        period=draw(st.floats(0.01, 3600)),
        rise=draw(st.integers(1, 10)),
        fall=draw(st.integers(1, 10)),
    )


@given(uplinks())
def test_detection_bounds_properties(uplink):
    dead, back = detection_bounds(uplink)
    every = max(uplink.period, round_seconds(uplink))
    # A failing round is decided no later than a passing one ends.
    assert dead - uplink.fall * every <= back - uplink.rise * every + 1e-9
    assert dead >= uplink.fall * uplink.period
    assert back >= uplink.rise * uplink.period


# --- helpers ---------------------------------------------------------------------------


def test_join_path():
    assert join_path("", "host") == "host"
    assert join_path("interfaces", "eno2") == "interfaces.eno2"
    assert join_path("host", 1) == "host[1]"


def test_effective_settings_use_the_file_key_names():
    settings = effective_settings(build_config(with_uplink(max_delay=150.5)))
    assert settings["proto"] == 136
    assert settings["initial_state"] == "up"
    interfaces = settings["interfaces"]
    assert isinstance(interfaces, dict)
    wan1 = interfaces["wan1"]
    assert list(wan1) == sorted(wan1)
    assert wan1["host"] == ["192.0.2.1"]
    assert wan1["max_delay"] == 150.5
    assert wan1["period"] == 5
    assert isinstance(wan1["period"], int)
    assert wan1["interval"] == 500
    assert wan1["timeout"] == 1000
    assert wan1["reset_script"] is None


# --- daemon-wide settings ------------------------------------------------------------


def test_daemon_settings_defaults():
    config = build_config(minimal())
    assert config.on_exit is OnExit.RESTORE
    assert config.when_all_down is WhenAllDown.NONE
    assert config.state_file == "/var/lib/pingu/state.json"
    assert config.control_socket == "/run/pingu/control.sock"
    assert config.control_group is None
    assert config.script_timeout == 60.0
    assert config.metrics is None


def test_daemon_settings_given():
    config = build_config(
        minimal(
            on_exit="keep",
            when_all_down="keep_best",
            state_file=None,
            control_socket="/tmp/p/c.sock",
            control_group="adm",
            script_timeout=2.5,
            metrics="0.0.0.0:9100",
        )
    )
    assert config.on_exit is OnExit.KEEP
    assert config.when_all_down is WhenAllDown.KEEP_BEST
    assert config.state_file is None
    assert config.control_socket == "/tmp/p/c.sock"
    assert config.control_group == "adm"
    assert config.script_timeout == 2.5
    assert config.metrics == ("0.0.0.0", 9100)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(9736, ("127.0.0.1", 9736)), ("9736", ("127.0.0.1", 9736)), ("[::1]:80", ("::1", 80))],
)
def test_metrics_listen_address_defaults_to_loopback(value, expected):
    assert build_config(minimal(metrics=value)).metrics == expected


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("on_exit", "Restore", '"restore" or "keep"'),
        ("when_all_down", "best", '"none" or "keep_best"'),
        ("state_file", "state.json", "absolute file path"),
        ("state_file", "/var/lib/pingu/", "absolute file path"),
        ("control_socket", 5, "absolute file path"),
        ("control_group", "", "group name or number"),
        ("control_group", True, "group name or number"),
        ("control_group", -1, "group name or number"),
        ("script_timeout", 0, "greater than 0"),
        ("metrics", "localhost:9100", "HOST must be an IP address"),
        ("metrics", 70000, "PORT from 1 to 65535"),
        ("metrics", "1.2.3.4:x", "PORT from 1 to 65535"),
        ("metrics", True, "HOST:PORT"),
        ("metrics", [9100], "PORT from 1"),
    ],
)
def test_daemon_settings_are_checked(key, value, rule):
    problem = only_problem(minimal(**{key: value}))
    assert problem.path == key
    assert rule in problem.rule


def test_hook_script_paths_must_be_absolute():
    problem = only_problem(with_uplink(up_script="hook.sh"))
    assert problem.path == "interfaces.wan1.up_script"
    assert "absolute path" in problem.rule


# --- both families --------------------------------------------------------------------


def test_ipv6_targets_beside_ipv4_ones_make_a_dual_stack_uplink():
    raw = minimal(host=["203.0.113.10", "2001:DB8:FFFF:0::10", "198.51.100.20"])
    (uplink,) = build_config(raw).uplinks
    assert uplink.targets == ("203.0.113.10", "2001:db8:ffff::10", "198.51.100.20")
    assert uplink.families == (Family.IPV4, Family.IPV6)
    assert uplink.targets_of(Family.IPV6) == ("2001:db8:ffff::10",)
    assert uplink.targets_of(Family.IPV4) == ("203.0.113.10", "198.51.100.20")


def test_an_ipv4_only_uplink_is_managed_in_ipv4_only():
    (uplink,) = build_config(minimal()).uplinks
    assert uplink.families == (Family.IPV4,)


def test_an_uplink_with_ipv6_targets_only_is_managed_in_ipv6_only():
    (uplink,) = build_config(with_uplink(host="2001:db8:ffff::10")).uplinks
    assert uplink.families == (Family.IPV6,)


def test_min_hosts_up_is_capped_within_each_family():
    raw = minimal(host=["203.0.113.10", "203.0.113.11", "2001:db8:ffff::10"], min_hosts_up=2)
    (uplink,) = build_config(raw).uplinks
    assert (uplink.quorum(Family.IPV4), uplink.quorum(Family.IPV6)) == (2, 1)
    problem = only_problem({**raw, "min_hosts_up": 3})
    assert problem.path == "min_hosts_up"
    assert "number of targets in host (2)" in problem.rule


def test_the_same_ipv6_target_written_twice_is_refused():
    problem = only_problem(minimal(host=["2001:db8:ffff::10", "2001:db8:ffff:0::10"]))
    assert problem.path == "host[1]"
    assert "given twice" in problem.rule
