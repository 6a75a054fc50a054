"""Scripts run as root (issue 12): who may own them and the directories on their way, a
check right before each run that runs exactly the file it checked, output of any size in
bounded memory, and a script that is over when its process is, whatever it left behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pingu.adapters.config_file import script_problem
from pingu.adapters.scripts import OUTPUT_LIMIT, CheckedScript, SubprocessScriptRunner
from pingu.domain.commands import (
    RunScript,
)

NOBODY = 65534
WAIT_S = 30.0


@pytest.fixture(autouse=True)
def _root_only() -> None:
    """Scripts of another user (chown) need root to be made, as pingu runs them."""
    if os.geteuid() != 0:
        pytest.skip("makes files of another user: needs root")


def script(path: Path, body: str, mode: int = 0o755) -> str:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(mode)
    return str(path)


def run(command: RunScript, timeout_s: float | None = None) -> int | None:
    async def go() -> int | None:
        return await asyncio.wait_for(SubprocessScriptRunner(timeout_s).run(command), WAIT_S)

    return asyncio.run(go())


def reset(path: str, *args: str) -> RunScript:
    return RunScript("wan1", path, "test", (("PINGU_INTERFACE", "wan1"),), args=args)


# -- 12. who may own a script and the directories on its way ---------------------------


def test_a_root_owned_script_in_roots_directories_passes(tmp_path: Path) -> None:
    # tmp_path is under /tmp: sticky and world-writable, but every entry below it is root's.
    assert script_problem(script(tmp_path / "ok.sh", "exit 0\n")) is None


def test_a_script_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = script(tmp_path / "user.sh", "id\n")
    os.chown(path, NOBODY, NOBODY)
    problem = script_problem(path)
    assert problem == "owned by uid 65534 (nobody), not by root: pingu runs it as root (chown root)"


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        (0o775, "writable by group or others (mode 0775)"),
        (0o757, "writable by group or others (mode 0757)"),
        # Sticky does not help where the script itself is: anyone could take its name first.
        (0o1777, "writable by group or others (mode 1777)"),
    ],
    ids=["0775", "0757", "1777"],
)
def test_a_script_in_a_directory_others_can_write_is_refused(
    tmp_path: Path, mode: int, why: str
) -> None:
    directory = tmp_path / "scripts"
    directory.mkdir()
    path = script(directory / "reset.sh", "exit 0\n")
    directory.chmod(mode)
    problem = script_problem(path)
    assert problem is not None
    assert problem.startswith(f"{directory}: {why}")
    assert problem.endswith("pingu runs scripts as root")


def test_any_directory_on_the_way_counts(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    path = script(deep / "reset.sh", "exit 0\n")
    (tmp_path / "a").chmod(0o777)
    assert script_problem(path) == (
        f"{tmp_path / 'a'}: writable by group or others (mode 0777): anyone who can write "
        "there could replace what is in it; pingu runs scripts as root"
    )
    (tmp_path / "a").chmod(0o755)
    os.chown(tmp_path / "a" / "b", NOBODY, NOBODY)
    problem = script_problem(path)
    assert problem is not None
    assert problem.startswith(f"{tmp_path / 'a' / 'b'}: owned by uid 65534")


def test_a_sticky_directory_on_the_way_needs_roots_entries(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "pingu").mkdir()
    path = script(shared / "pingu" / "reset.sh", "exit 0\n")
    assert script_problem(path) is None
    os.chown(shared / "pingu", NOBODY, NOBODY)
    problem = script_problem(path)
    assert problem is not None
    assert "owned by uid 65534" in problem


def test_a_symlink_is_followed_only_when_it_and_its_target_are_roots(tmp_path: Path) -> None:
    target = script(tmp_path / "real.sh", "exit 0\n")
    link = tmp_path / "link.sh"
    link.symlink_to(target)
    assert script_problem(str(link)) is None
    os.chown(link, NOBODY, NOBODY, follow_symlinks=False)
    problem = script_problem(str(link))
    assert problem is not None
    assert problem.startswith(f"{link}: owned by uid 65534")
    # A root-owned link into a directory someone else controls: judged where it leads.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o777)
    hidden = script(elsewhere / "real.sh", "exit 0\n")
    second = tmp_path / "second.sh"
    second.symlink_to(hidden)
    problem = script_problem(str(second))
    assert problem is not None
    assert problem.startswith(f"{elsewhere}: writable by group or others")


def test_a_loop_of_symlinks_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    problem = script_problem(str(tmp_path / "a"))
    assert problem is not None
    assert "more than 40 symbolic links" in problem


# -- 12. checked again right before each run; the checked file is the one run --------


def test_a_script_made_another_users_after_the_load_is_not_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: fine at start-up, then a user's, changed, and run as root."""
    proof = tmp_path / "ran"
    path = script(tmp_path / "reset.sh", "exit 0\n")
    assert script_problem(path) is None  # what the configuration check said at load
    script(Path(path), f"id > {proof}\n")
    os.chown(path, NOBODY, NOBODY)
    assert run(reset(path)) is None
    assert not proof.exists()
    assert f"reset script {path} refused, not run: owned by uid 65534" in caplog.text


def test_a_script_whose_directory_was_opened_up_after_the_load_is_not_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proof = tmp_path / "ran"
    directory = tmp_path / "scripts"
    directory.mkdir()
    path = script(directory / "reset.sh", f"touch {proof}\n")
    assert script_problem(path) is None
    directory.chmod(0o777)
    assert run(reset(path)) is None
    assert not proof.exists()
    assert "refused, not run" in caplog.text


def test_the_file_checked_is_the_file_run_even_if_its_path_changes_meanwhile(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = Path(script(tmp_path / "reset.sh", 'echo "checked one: $PINGU_SCRIPT $*"\n'))
    checked = CheckedScript.open(str(path))
    impostor = Path(script(tmp_path / "impostor.sh", "echo impostor\n"))
    os.replace(impostor, path)  # after the check, before the run

    async def go() -> int | None:
        with checked:
            return await SubprocessScriptRunner().run_checked(reset(str(path), "x"), checked)

    assert asyncio.run(go()) == 0
    assert f"reset.sh: checked one: {path} x" in caplog.text
    assert "impostor" not in caplog.text


def test_arguments_are_passed_and_argv0_is_the_configured_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    program = tmp_path / "argv.py"
    program.write_text(f"#!{sys.executable}\nimport sys\nprint('argv', sys.argv[1:])\n")
    program.chmod(0o755)
    assert run(reset(str(program), "wwan0", "two words")) == 0
    assert "argv.py: argv ['wwan0', 'two words']" in caplog.text


# -- 13. output of any size in bounded memory ------------------------------------------


def test_output_is_kept_to_its_limit_and_the_rest_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    size = 5 * 1024 * 1024
    path = script(tmp_path / "chatty.sh", f"head -c {size} /dev/zero | tr '\\0' 'x'\n")
    assert run(reset(path)) == 0
    logged = "".join(r.getMessage() for r in caplog.records if "chatty.sh: x" in r.getMessage())
    assert logged.count("x") == OUTPUT_LIMIT
    assert f"chatty.sh: ({size - OUTPUT_LIMIT} more bytes of output not logged)" in caplog.text


def test_two_hundred_megabytes_of_output_do_not_grow_the_runner(tmp_path: Path) -> None:
    """The issue's figure: 200 MB of output took the daemon from 41.6 MB to 417 MB. Here
    the runner runs in a child process that reports its peak resident size."""
    path = script(tmp_path / "flood.sh", "head -c 200000000 /dev/zero\n")
    child = textwrap.dedent(
        f"""
        import asyncio, resource
        from pingu.adapters.scripts import SubprocessScriptRunner
        from pingu.domain.commands import RunScript
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        code = asyncio.run(SubprocessScriptRunner(60).run(RunScript("wan1", {path!r}, "t", ())))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(code, before, after)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=True
    )
    code, before_kib, after_kib = done.stdout.split()
    assert code == "0"
    assert int(after_kib) - int(before_kib) < 50 * 1024, done.stdout  # not 200 MB


# -- 14. a script has ended when its process has exited --------------------------------


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[Path]:
    """Where scripts write the pids of what they leave running; all killed at the end."""
    pids = tmp_path / "pids"
    yield pids
    if pids.exists():
        for line in pids.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)


@pytest.mark.parametrize("detach", ["", "setsid "], ids=["in-its-group", "setsid"])
def test_a_background_child_holding_the_output_does_not_hold_the_runner(
    tmp_path: Path, leftovers: Path, caplog: pytest.LogCaptureFixture, detach: str
) -> None:
    caplog.set_level(logging.INFO)
    path = script(
        tmp_path / "leaves.sh",
        f"""\
        {detach}sleep 300 &
        echo $! >> {leftovers}
        echo started the helper
        exit 0
        """,
    )
    fds_before = len(os.listdir("/proc/self/fd"))
    # A timeout that would be reached only by waiting for the helper: the old runner
    # reported the script killed after it.
    for _ in range(3):
        assert run(reset(path), timeout_s=10) == 0
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert caplog.text.count("leaves.sh: started the helper") == 3
    assert "killed" not in caplog.text
    assert len(leftovers.read_text().split()) == 3


def test_a_script_still_running_at_its_timeout_is_killed_with_its_group(
    tmp_path: Path, leftovers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = script(
        tmp_path / "hangs.sh",
        f"""\
        sleep 300 &
        echo $! >> {leftovers}
        wait
        """,
    )
    assert run(reset(path), timeout_s=0.5) is None
    assert "still running after 0.5 s: killed" in caplog.text
    helper = int(leftovers.read_text().split()[0])
    for _ in range(int(WAIT_S / 0.05)):
        if not alive(helper):
            break
        threading.Event().wait(0.05)
    else:
        pytest.fail("the script's group was not killed")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
