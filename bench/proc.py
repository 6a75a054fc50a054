"""CPU time and memory of a process, from /proc, and a sampler that follows them."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """One reading of a process: when, its CPU time two ways, and its memory."""

    time: float  # time.monotonic()
    cpu_ticks_s: float  # utime + stime from /proc/PID/stat (1/CLK_TCK resolution)
    cpu_exact_s: float  # sum of the threads' run time from /proc/PID/task/*/schedstat (ns)
    rss_kb: int
    hwm_kb: int  # peak RSS so far


def cpu_ticks_s(pid: int) -> float:
    """utime + stime of every thread, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_exact_s(pid: int) -> float:
    """Time on a CPU summed over the threads alive now, from the scheduler (ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
    return total / 1e9


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def usage(pid: int) -> Usage:
    rss, hwm = memory_kb(pid)
    return Usage(time.monotonic(), cpu_ticks_s(pid), cpu_exact_s(pid), rss, hwm)


@dataclass(frozen=True)
class CpuShare:
    """CPU used over a window, as a share of one core and as seconds per hour."""

    seconds: float
    ticks_percent: float
    exact_percent: float

    @property
    def exact_s_per_hour(self) -> float:
        return self.exact_percent / 100 * 3600

    @property
    def ticks_s_per_hour(self) -> float:
        return self.ticks_percent / 100 * 3600


def cpu_share(before: Usage, after: Usage) -> CpuShare:
    wall = max(after.time - before.time, 1e-9)
    ticks = (after.cpu_ticks_s - before.cpu_ticks_s) / wall * 100
    exact = (after.cpu_exact_s - before.cpu_exact_s) / wall * 100
    return CpuShare(wall, ticks, exact)


class _Periodic:
    """Calls ``sample()`` every ``every`` seconds on a thread, from entering the block until
    it ends or the process is gone."""

    def __init__(self, pid: int, every: float, name: str) -> None:
        self.pid = pid
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name} {pid}", daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            try:
                self.sample()
            except (FileNotFoundError, ProcessLookupError):
                return
            if self._stop.wait(self.every):
                return


class Sampler(_Periodic):
    """A process's usage, read every ``every`` seconds."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(pid, every, "sample")
        self.samples: list[Usage] = []

    def sample(self) -> None:
        self.samples.append(usage(self.pid))


def wait_quiet(pid: int, quiet_for: float, timeout: float, step: float = 0.25) -> float:
    """Wait until the process used (almost) no CPU for ``quiet_for`` seconds; returns the
    monotonic time when that quiet stretch began (or the timeout's end)."""
    deadline = time.monotonic() + timeout
    last = cpu_exact_s(pid)
    quiet_start = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(step)
        now_cpu = cpu_exact_s(pid)
        if now_cpu - last > 0.02 * step:  # busier than 2 % of a core
            quiet_start = time.monotonic()
        last = now_cpu
        if time.monotonic() - quiet_start >= quiet_for:
            return quiet_start
    return time.monotonic()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class FdPeak(_Periodic):
    """The most file descriptors a process held at once while the block ran (sampled
    every ``every`` seconds on a thread)."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(pid, every, "fds")
        self.peak = 0

    def sample(self) -> None:
        self.peak = max(self.peak, open_fds(self.pid))
