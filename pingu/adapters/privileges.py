"""Whether this process holds what the daemon needs, asked of the kernel before anything runs.

Without CAP_NET_ADMIN every route change fails, and without CAP_NET_RAW every echo: a
daemon started that way would look alive while it could do nothing, so `pingu run`
refuses at once. Capabilities, not the user id, are what counts: root under a narrow
bounding set can lack them, and a non-root user can hold them (AmbientCapabilities=).
"""

from __future__ import annotations

from pathlib import Path

# Bit numbers from linux/capability.h.
NEEDED = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13}
STATUS_PATH = "/proc/self/status"


def effective_capabilities(status_text: str) -> int | None:
    """The CapEff mask of a /proc/PID/status text, or None when it has none."""
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def missing_capabilities(status_text: str | None = None) -> list[str]:
    """The capabilities the daemon needs and this process lacks (empty: all there)."""
    if status_text is None:
        try:
            status_text = Path(STATUS_PATH).read_text()
        except OSError:
            status_text = ""
    mask = effective_capabilities(status_text)
    if mask is None:
        return list(NEEDED)
    return [name for name, bit in NEEDED.items() if not mask >> bit & 1]


def privilege_problem(status_text: str | None = None) -> str | None:
    """One line saying what is missing to run the daemon, or None."""
    missing = missing_capabilities(status_text)
    if not missing:
        return None
    return (
        f"pingu run needs CAP_NET_ADMIN and CAP_NET_RAW (run it as root); this process lacks "
        f"{' and '.join(missing)}: not started, no route touched"
    )
