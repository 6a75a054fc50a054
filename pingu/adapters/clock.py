"""The clock port: the system's monotonic clock."""

from __future__ import annotations

import time


class MonotonicClock:
    """Seconds from CLOCK_MONOTONIC: immune to wall-clock jumps (NTP, RTC-less boards)."""

    def monotonic(self) -> float:
        return time.monotonic()
