"""check_config: what `pingu check-config FILE` prints and returns."""

from __future__ import annotations

import io
import json

from pingu.domain.config import UplinkConfig
from pingu.entrypoints.check_config import check_config, timing_line


def run(path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check_config(str(path), out, err)
    return code, out.getvalue(), err.getvalue()


def write(tmp_path, config: object) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config) if not isinstance(config, str) else config)
    return str(path)


def test_valid_config_prints_effective_settings_warnings_and_timings(tmp_path):
    path = write(
        tmp_path,
        """{
          "host": "192.0.2.1", // comment
          "proto": 12,
          "interfaces": {
            "wan1": {"metric": 100},
            "wan2": {"metric": 200, "count": 10, "interval": 1000, "period": 2.5, "fall": 3}
          }
        }""",
    )

    code, out, err = run(path)

    assert (code, err) == (0, "")
    settings_text, _, rest = out.partition("\n}\n")
    settings = json.loads(settings_text + "\n}")
    assert settings["proto"] == 12
    assert list(settings["interfaces"]) == ["wan1", "wan2"]
    wan1 = settings["interfaces"]["wan1"]
    assert wan1 == {
        "count": 5,
        "fall": 1,
        "flow_quiet_period": 0,
        "flush_conntrack": True,
        "kill_sockets": True,
        "host": ["192.0.2.1"],
        "interval": 500,
        "max_delay": 1000,
        "max_lost": 2,
        "metric": 100,
        "min_hosts_up": 1,
        "period": 5,
        "reset_script": None,
        "reset_script_grace_period": 600,
        "up_script": None,
        "down_script": None,
        "rise": 1,
        "timeout": 1000,
    }
    assert settings["on_exit"] == "restore"
    assert settings["when_all_down"] == "none"
    assert settings["state_file"] == "/var/lib/pingu/state.json"
    assert settings["control_socket"] == "/run/pingu/control.sock"
    assert settings["metrics"] is None
    lines = rest.splitlines()
    assert lines[0].startswith("warning: proto 12 is the number of 'bird' routes")
    assert lines[1].startswith("warning: interfaces.wan2: a round can last 10 s")
    assert lines[2] == "wan1: managed in ipv4 (1 target, 1 must pass)"
    assert lines[3] == (
        "wan1: dead uplink detected within 7.0 s, recovered one back within 8.0 s "
        "(period 5 s, fall 1, rise 1)"
    )
    # L = 9*1 + 1 = 10, P = 10, F = 2*1 + 1 = 3: 3*10 + 3, 1*10 + 10
    assert lines[4] == "wan2: managed in ipv4 (1 target, 1 must pass)"
    assert lines[5] == (
        "wan2: dead uplink detected within 33.0 s, recovered one back within 20.0 s "
        "(period 2.5 s, fall 3, rise 1)"
    )
    assert len(lines) == 6


def test_problems_go_to_err_with_exit_code_1(tmp_path):
    path = write(tmp_path, {"proto": 0, "interfaces": {"wan1": {"metric": 1, "count": True}}})

    code, out, err = run(path)

    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"config {path}: 3 problems:",
        "  proto: 0: must be an integer from 1 to 255",
        "  host: (missing): required: interface(s) wan1 set no host of their own",
        "  interfaces.wan1.count: True: must be an integer from 1 to 2147483647",
    ]


def test_one_problem_is_singular(tmp_path):
    code, _, err = run(tmp_path / "absent.json")
    assert code == 1
    assert err.splitlines()[0] == f"config {tmp_path / 'absent.json'}: 1 problem:"
    assert "No such file" in err


def test_syntax_error_is_reported_without_traceback(tmp_path):
    code, _, err = run(write(tmp_path, '{"host": "192.0.2.1",\n "interfaces": {,}}'))
    assert code == 1
    assert "line 2, column 17" in err
    assert "Traceback" not in err


def test_timing_line_shows_fractions():
    uplink = UplinkConfig(
        name="ppp0", metric=1, targets=("192.0.2.1",), interval_ms=250, timeout_ms=750
    )
    # L = (4*250 + 750)/1000 = 1.75, P = 5, F = (2*250 + 750)/1000 = 1.25
    assert timing_line(uplink) == (
        "ppp0: dead uplink detected within 6.25 s, recovered one back within 6.75 s "
        "(period 5 s, fall 1, rise 1)"
    )


def test_each_uplink_shows_its_families_with_their_own_quorum(tmp_path):
    path = write(
        tmp_path,
        {
            "host": ["203.0.113.10", "2001:db8:ffff::10", "2001:db8:ffff::11"],
            "interfaces": {
                "wan1": {"metric": 100, "min_hosts_up": 2},
                "wan2": {"metric": 200, "host": ["2001:db8:ffff::12"]},
            },
        },
    )

    code, out, _ = run(path)

    assert code == 0
    lines = out.splitlines()
    assert (
        "wan1: managed in ipv4 (1 target, 1 must pass) and ipv6 (2 targets, 2 must pass)" in lines
    )
    assert "wan2: managed in ipv6 (1 target, 1 must pass)" in lines
