"""load_config: comments, duplicate keys, syntax errors, file and script checks."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingu.adapters.config_file import (
    MAX_CONFIG_BYTES,
    load_config,
    parse_config_text,
    script_problem,
    strip_json_comments,
)
from pingu.domain.errors import ConfigError, ConfigProblem
from pingu.entrypoints import cli

# The example of the seed's README (seed-py-pingu.md), verbatim.
SEED_EXAMPLE = """\
{
  "host": "8.8.8.8", // Ping requests are sent to this host 
  "proto": 136, // Proto number of the routes installed by py-pingu
  "interfaces": {  // map of all monitored interfaces
    "eno2": { // interface name
      "metric": 100, // if the interface is ok (ICMP replies received and max_lost/max_delay are met) the then the route will be installed with this metric
      "count": 10, // count of sent ICMP requests
      "max_lost": 5, // maximum number of lost packets (if lost > max_lost the gw of this interface will be disabled)
      "max_delay": 100, // maximum average delay (ms)
      "period": 10, // probe eno2 each 10 seconds
      "reset_script": "/path/to/script.sh", // script executed if the interface is marked as faulty
      "reset_script_grace_period ": 60 // minimum time interval between two reset_script executions

  
    },
    "wlo1": {
      "metric": 50,
      "period": 50 // probe wlo1 each 50 seconds
    }
  }
}
"""  # noqa: E501, W291, W293 (the seed's trailing spaces are part of the example)


def write(tmp_path, text: str, name: str = "config.json"):
    path = tmp_path / name
    path.write_text(text)
    return path


def executable(tmp_path, name: str = "reset.sh", mode: int = 0o755) -> str:
    script = tmp_path / name
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(mode)
    return str(script)


def load_problems(path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def minimal_text(**settings: object) -> str:
    return json.dumps({"host": "192.0.2.1", "interfaces": {"wan1": {"metric": 1, **settings}}})


# --- the seed example ------------------------------------------------------------------


def test_seed_example_with_its_placeholder_script_names_only_the_script(tmp_path):
    (problem,) = load_problems(write(tmp_path, SEED_EXAMPLE))
    assert problem.path == "interfaces.eno2.reset_script"
    assert problem.rule == "no such file"


def test_seed_example_passes_with_an_existing_script(tmp_path):
    script = executable(tmp_path)
    text = SEED_EXAMPLE.replace("/path/to/script.sh", script)

    config = load_config(write(tmp_path, text))

    eno2, wlo1 = config.uplinks
    assert (eno2.name, eno2.metric, eno2.count, eno2.max_lost) == ("eno2", 100, 10, 5)
    assert (eno2.max_delay_ms, eno2.period, eno2.reset_script) == (100.0, 10.0, script)
    # The key with a trailing space is read as the key it names (with a warning).
    assert eno2.reset_script_grace_period == 60.0
    assert any("reset_script_grace_period " in warning for warning in config.warnings)
    assert (wlo1.name, wlo1.metric, wlo1.period) == ("wlo1", 50, 50.0)
    assert wlo1.targets == eno2.targets == ("8.8.8.8",)
    assert config.proto == 136


# --- comments --------------------------------------------------------------------------


def test_comment_markers_inside_strings_survive():
    text = '{"a": "http://x/*y*/", "b": "say \\"//\\" and \\\\", "c": 1} // end'
    assert parse_config_text(text) == {"a": "http://x/*y*/", "b": 'say "//" and \\', "c": 1}


def test_block_comments_may_span_lines_and_keep_line_numbers():
    text = '{\n/* one\ntwo\nthree */ "a": 1\n  "b": 2\n}'
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text)
    (problem,) = caught.value.problems
    assert problem.path == "line 5, column 3"
    assert problem.value == '"b": 2'
    assert "Expecting ',' delimiter" in problem.rule


def test_unclosed_block_comment_is_reported_where_it_opens():
    with pytest.raises(ConfigError) as caught:
        parse_config_text('{\n  "a": 1 /* oops\n}')
    assert caught.value.problems == (
        ConfigProblem("line 2, column 10", "/*", "comment never closed"),
    )


def test_comment_at_end_of_file_without_newline():
    assert parse_config_text("[1] // done") == [1]


def test_unterminated_string_is_a_syntax_error():
    with pytest.raises(ConfigError) as caught:
        parse_config_text('{"a": "open\n// "}')
    assert caught.value.problems[0].path.startswith("line 1,")


def test_string_ending_in_a_backslash_at_end_of_text():
    with pytest.raises(ConfigError):
        parse_config_text('"abc\\')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_plain_json_is_left_alone(value):
    text = json.dumps(value, ensure_ascii=False)
    assert strip_json_comments(text) == text


@given(st.text())
def test_stripping_keeps_length_and_newlines(text):
    try:
        stripped = strip_json_comments(text)
    except ConfigError:
        return
    assert len(stripped) == len(text)
    assert [i for i, c in enumerate(stripped) if c == "\n"] == [
        i for i, c in enumerate(text) if c == "\n"
    ]


@given(json_values, st.text(alphabet=st.characters(exclude_characters="\n\r")), st.text())
def test_comments_between_tokens_are_ignored(value, line_comment, block_comment):
    block_comment = block_comment.replace("*/", "")
    lines = json.dumps(value, indent=1, ensure_ascii=False).split("\n")
    commented = "\n".join(f"/*{block_comment}*/{line} //{line_comment}" for line in lines)
    assert parse_config_text(commented) == value


# --- JSON errors -----------------------------------------------------------------------


def test_trailing_comma_gets_a_hint():
    with pytest.raises(ConfigError) as caught:
        parse_config_text('{\n  "a": 1,\n}')
    (problem,) = caught.value.problems
    assert problem.path == "line 3, column 1"
    assert "trailing comma" in problem.rule


def test_duplicate_keys_are_errors_with_their_path(tmp_path):
    text = """{
      "host": "192.0.2.1",
      "interfaces": {
        "wan1": {"metric": 1, "count": 3, "count": 4},
        "wan2": {"metric": 2},
        "wan2": {"metric": 3}
      },
      "host": ["192.0.2.9", {"x": 1, "x": 2}]
    }"""
    found = load_problems(write(tmp_path, text))
    assert [p.path for p in found[:4]] == [
        "host",
        "host[1].x",
        "interfaces.wan2",
        "interfaces.wan1.count",
    ]
    assert "more than once" in found[0].rule
    assert found[3].value == 4
    # The last host is the one validated, and its problem comes in the same list.
    assert found[4].path == "host[1]"


def test_syntax_error_in_a_file(tmp_path):
    found = load_problems(write(tmp_path, '{"host": "192.0.2.1" "interfaces": {}}'))
    assert len(found) == 1
    assert found[0].path == "line 1, column 22"


def test_nan_is_rejected(tmp_path):
    (problem,) = load_problems(
        write(tmp_path, minimal_text().replace('"metric": 1', '"metric": 1, "period": NaN'))
    )
    assert problem.path == "interfaces.wan1.period"


# --- the file itself -------------------------------------------------------------------


def test_missing_file_is_a_config_error(tmp_path):
    (problem,) = load_problems(tmp_path / "absent.json")
    assert problem.value == str(tmp_path / "absent.json")
    assert "cannot read" in problem.rule
    assert "No such file" in problem.rule


def test_directory_is_a_config_error(tmp_path):
    (problem,) = load_problems(tmp_path)
    assert "cannot read" in problem.rule


def test_non_utf8_file_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"host": "\xe9"}')
    (problem,) = load_problems(path)
    assert "UTF-8" in problem.rule


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + minimal_text().encode())
    assert load_config(path).uplinks[0].name == "wan1"


def test_pathlike_and_str_paths(tmp_path):
    path = write(tmp_path, minimal_text())
    assert load_config(path) == load_config(str(path))


# --- reset scripts ---------------------------------------------------------------------


def test_executable_script_is_accepted(tmp_path):
    script = executable(tmp_path)
    config = load_config(write(tmp_path, minimal_text(reset_script=script)))
    assert config.uplinks[0].reset_script == script


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        (0o644, "executable"),
        (0o775, "writable by group or others (mode 0775)"),
        (0o757, "writable by group or others"),
    ],
)
def test_unsafe_scripts_are_refused(tmp_path, mode, why):
    script = executable(tmp_path, mode=mode)
    (problem,) = load_problems(write(tmp_path, minimal_text(reset_script=script)))
    assert problem.path == "interfaces.wan1.reset_script"
    assert problem.value == script
    assert why in problem.rule


def test_script_must_be_a_regular_file(tmp_path):
    assert script_problem(str(tmp_path)) == "must be a regular file"


def test_script_that_cannot_be_checked(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    problem = script_problem(str(blocker / "inside.sh"))
    assert problem is not None
    assert problem.startswith("cannot be checked")


def test_script_symlink_is_judged_by_its_target(tmp_path):
    link = tmp_path / "link.sh"
    link.symlink_to(executable(tmp_path))
    assert script_problem(str(link)) is None


def test_script_and_validation_problems_come_together(tmp_path):
    text = json.dumps(
        {
            "host": "192.0.2.1",
            "interfaces": {
                "wan1": {"metric": 1, "count": 0, "reset_script": str(tmp_path / "none")},
                "wan2": {"metric": 2, "reset_script": "relative.sh"},
                "wan3": "not an object",
            },
        }
    )
    found = load_problems(write(tmp_path, text))
    assert [p.path for p in found] == [
        "interfaces.wan1.count",
        "interfaces.wan2.reset_script",
        "interfaces.wan3",
        "interfaces.wan1.reset_script",
    ]


def test_scripts_are_not_checked_without_interfaces(tmp_path):
    found = load_problems(write(tmp_path, '{"host": "192.0.2.1", "interfaces": []}'))
    assert [p.path for p in found] == ["interfaces"]


@pytest.mark.parametrize("key", ["up_script", "down_script"])
def test_hook_scripts_follow_the_same_rules(tmp_path, key):
    script = executable(tmp_path)
    config = load_config(write(tmp_path, minimal_text(**{key: script})))
    assert getattr(config.uplinks[0], key) == script
    unsafe = executable(tmp_path, name="unsafe.sh", mode=0o777)
    (problem,) = load_problems(write(tmp_path, minimal_text(**{key: unsafe})))
    assert problem.path == f"interfaces.wan1.{key}"
    assert "writable by group or others" in problem.rule


# --- hostile files (issue 12): every one a problem with a message, never a traceback ----


def check_config_in_a_child(path: str) -> subprocess.CompletedProcess[str]:
    """`pingu check-config PATH` in a process of its own, bounded in time and memory: a
    reader that waits or reads without end fails this way instead of hanging the tests."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    return subprocess.run(
        [sys.executable, "-m", "pingu", "check-config", path],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        preexec_fn=limits,
        check=False,
    )


CHILD_TIMEOUT_S = 60
CHILD_MEMORY = 1024 * 1024 * 1024


def test_a_fifo_as_configuration_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    done = check_config_in_a_child(str(fifo))
    assert done.returncode == 1
    assert "it is a FIFO, not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_dev_zero_as_configuration_is_refused_without_reading_it():
    done = check_config_in_a_child("/dev/zero")
    assert done.returncode == 1
    assert "it is a character device, not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_over_one_mib_is_refused_and_one_of_exactly_one_mib_is_read(tmp_path):
    body = minimal_text()
    exactly = write(tmp_path, body + " " * (MAX_CONFIG_BYTES - len(body)), "exact.json")
    assert os.path.getsize(exactly) == MAX_CONFIG_BYTES
    assert load_config(exactly).uplinks[0].name == "wan1"
    over = write(tmp_path, body + " " * (MAX_CONFIG_BYTES + 1 - len(body)), "over.json")
    (problem,) = load_problems(over)
    assert problem.rule == "the configuration file is larger than 1024 KiB"


def test_an_integer_of_4301_digits_is_a_problem_where_it_is(tmp_path):
    text = '{"host": "192.0.2.1",\n "proto": ' + "1" * 4301 + ', "interfaces": {}}'
    (problem,) = load_problems(write(tmp_path, text))
    assert problem.path == "line 2, column 11"
    assert problem.rule == "a number of 4301 digits (at most 100)"
    assert len(str(problem)) < 400


@pytest.mark.parametrize("depth", [21, 1000, 100_000])
def test_deep_nesting_is_a_problem_where_it_goes_too_deep(tmp_path, depth):
    text = '{"host": ' + "[" * depth + "]" * depth + ', "interfaces": {}}'
    (problem,) = load_problems(write(tmp_path, text))
    assert problem.path == "line 1, column 29"  # the 21st level: the 20th "["
    assert problem.rule == "nested more than 20 levels deep"


def test_twenty_levels_are_parsed():
    nested: object = []
    for _ in range(19):
        nested = [nested]
    assert parse_config_text("[" * 20 + "]" * 20) == nested


@pytest.mark.parametrize(
    "text",
    [
        '{"host": "192.0.2.1", "interfaces": {"wan1": {"metric": ' + "9" * 5000 + "}}}",
        '{"interfaces": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}",
        "[" * 4000,
        '{"a": [' * 600,
    ],
    ids=["5000 digits", "1000 objects deep", "4000 [", "600 unclosed"],
)
def test_check_config_reports_hostile_files_in_one_line_without_traceback(tmp_path, capsys, text):
    path = write(tmp_path, text)
    assert cli.main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"config {path}: 1 problem:\n")
    assert "Traceback" not in err


def test_a_list_of_too_many_members_is_one_problem(tmp_path):
    hosts = [f"192.0.2.{i % 250 + 1}" for i in range(5000)]
    text = json.dumps({"host": hosts, "interfaces": {"wan1": {"metric": 1}}})
    (problem,) = load_problems(write(tmp_path, text))
    assert problem.path == "host"
    assert problem.rule == "a list of 5000 members (at most 1000)"
    assert str(problem) == "host: <list of 5000 members>: a list of 5000 members (at most 1000)"


def test_a_lone_surrogate_is_not_text(tmp_path):
    text = '{"host": "192.0.2.1", "state_file": "/var/lib/\\ud800", "interfaces": {}}'
    (problem,) = load_problems(write(tmp_path, text))
    assert problem.path == "state_file"
    assert "not valid Unicode text" in problem.rule


def test_a_value_of_most_of_a_megabyte_is_not_repeated_whole(tmp_path):
    huge = "x" * 300_000
    text = json.dumps({"host": huge, "interfaces": {huge: {"metric": 1}}, huge: 1})
    problems = load_problems(write(tmp_path, text))
    assert {p.path[:10] for p in problems} == {"host", "interfaces", "x" * 10}
    for problem in problems:
        shown = str(problem)
        assert len(shown) < 1000, shown[:200]
        assert " characters)" in shown


class CountingText(str):
    """Text that counts how often it is looked at one position at a time."""

    looks = 0

    def __getitem__(self, key: Any) -> str:
        CountingText.looks += 1
        return str.__getitem__(self, key)

    def startswith(self, *args: Any) -> bool:
        CountingText.looks += 1
        return str.startswith(self, *args)


def test_megabytes_of_whitespace_are_not_walked_one_character_at_a_time():
    """10 MB of whitespace took 6.9 s: comments were stripped character by character. The
    work now follows the comments and strings, which the count shows whatever the
    machine's speed."""
    text = " " * 1_000_000 + '{"a": [1, "//", 2]} // end' + "\n" * 1000
    CountingText.looks = 0
    stripped = strip_json_comments(CountingText(text))
    assert stripped == text.replace("// end", "      ")
    assert CountingText.looks < 100
    assert parse_config_text(text) == {"a": [1, "//", 2]}


@pytest.mark.parametrize(
    "group",
    ["\u00b2", "a\u0000b", 2**32, 2**32 - 1, "4294967295", "9" * 30, "-x", "ab:c", "a b", "é"],
)
def test_control_group_values_run_would_choke_on_are_problems(tmp_path, group):
    text = minimal_text().replace('"host"', f'"control_group": {json.dumps(group)}, "host"')
    (problem,) = load_problems(write(tmp_path, text))
    assert problem.path == "control_group"
    assert "group name or number" in problem.rule


@pytest.mark.parametrize("group", ["adm", "pingu-status", "_pingu", "4242", 0, 4294967294])
def test_control_group_names_and_numbers_are_accepted(tmp_path, group):
    text = minimal_text().replace('"host"', f'"control_group": {json.dumps(group)}, "host"')
    assert load_config(write(tmp_path, text)).control_group == str(group)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("é" * 8, "1 to 15 bytes long"),  # 8 characters, 16 bytes
        ("wan\u00001", "NUL"),
        ("\ud800", "valid Unicode"),
    ],
)
def test_interface_names_are_checked_in_bytes_and_refuse_nul(tmp_path, name, why):
    text = json.dumps({"host": "192.0.2.1", "interfaces": {name: {"metric": 1}}})
    found = load_problems(write(tmp_path, text))
    assert any(why in problem.rule for problem in found), found


def test_an_interface_name_of_fifteen_bytes_is_accepted(tmp_path):
    name = "é" * 7 + "x"
    text = json.dumps({"host": "192.0.2.1", "interfaces": {name: {"metric": 1}}})
    assert load_config(write(tmp_path, text)).uplinks[0].name == name


def nested_numbers(depth: int, digits: int) -> str:
    return "[" * depth + "7" * digits


@given(
    st.text(alphabet='[]{}"\\:,-.0123456789eE \n/*aNI', max_size=3000)
    | st.builds(nested_numbers, st.integers(0, 3000), st.integers(0, 5000))
)
def test_whatever_the_text_it_is_parsed_or_a_config_error(text):
    problems: tuple[ConfigProblem, ...] = ()
    try:
        parse_config_text(text)
    except ConfigError as error:
        problems = error.problems
        assert problems
    assert all(len(str(problem)) < 1000 for problem in problems)
