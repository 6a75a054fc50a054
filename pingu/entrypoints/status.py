"""`pingu status`: ask the running daemon over its control socket, print a table or JSON;
or, with `--check`, only answer by the exit status whether an uplink is up and routed."""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from pingu.adapters import json_limits
from pingu.domain.errors import ConfigError
from pingu.domain.health import Health

# `--check` runs every few seconds (keepalived's track_script): what only the table or a
# configuration file needs (the settings model, the file reader, the read side) is
# imported when it is needed, which keeps the check's start-up to a few tens of ms.
DEFAULT_CONTROL_SOCKET = "/run/pingu/control.sock"  # pingu.domain.config's default

DEFAULT_TIMEOUT_S = 5.0
REPLY_LIMIT = 16 * 1024 * 1024
REPLY_DEPTH = 32  # a status document nests 5 levels (status.uplinks[0].last_round.targets[0])

EXIT_OK = 0
EXIT_FAILED = 1  # the daemon answered with an error, or with something that is not a status
EXIT_NOT_ROUTED = 1  # --check: no uplink (of the family) is up and routed
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_DENIED = 4
EXIT_TIMEOUT = 5
CHANGES_SHOWN = 5  # state changes shown per uplink family; --json has every one kept


class StatusUnavailable(Exception):
    """No status to show: a one-line message for the operator and the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def show_status(
    socket_path: str | None,
    config_path: str | None,
    *,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> int:
    """Print the daemon's status on `out`; a one-line reason on `err` when there is none."""
    try:
        path = socket_path or socket_from_config(config_path) or DEFAULT_CONTROL_SOCKET
        document = query_status(path, timeout)
        text = json.dumps(document, indent=2, sort_keys=True) if as_json else render(document)
    except StatusUnavailable as error:
        err.write(f"{error}\n")
        return error.code
    out.write(text + "\n")
    return EXIT_OK


def check_status(
    socket_path: str | None,
    config_path: str | None,
    *,
    family: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> int:
    """`pingu status --check` (keepalived's track_script): 0 when at least one uplink, of
    `family` if given, is up and routed; else the reason's exit status. Prints nothing."""
    try:
        path = socket_path or socket_from_config(config_path) or DEFAULT_CONTROL_SOCKET
        document = query_status(path, timeout)
    except StatusUnavailable as error:
        return error.code
    return EXIT_OK if any_routed(document, family) else EXIT_NOT_ROUTED


def any_routed(document: Mapping[str, Any], family: str | None = None) -> bool:
    """Whether an uplink family (of `family`, or any) is up (or failing: still routed) and
    its route is in the table. A route kept as the last resort of an uplink that is down
    does not count, nor does anything in a document of an unexpected shape."""
    routed = {h.value for h in Health if h.routed}
    try:
        for uplink in document["uplinks"]:
            families: Mapping[str, Mapping[str, Any]] = uplink.get("families") or {
                "ipv4": uplink  # a version-1 document: the uplink is its IPv4
            }
            for name, path in families.items():
                if family not in (None, name):
                    continue
                if path.get("route_installed") is True and path.get("state") in routed:
                    return True
    except (KeyError, TypeError, AttributeError):
        return False
    return False


def socket_from_config(config_path: str | None) -> str | None:
    """The `control_socket` of a configuration file (its default when absent)."""
    if config_path is None:
        return None
    from pingu.adapters.config_file import parse_config_text, read_config_text  # noqa: PLC0415

    try:
        # Only a regular file, bounded in size and nesting: never a hang on a FIFO.
        raw = parse_config_text(read_config_text(config_path))
    except ConfigError as error:
        problem = error.problems[0]
        where = f"{problem.path}: " if problem.path else ""
        raise StatusUnavailable(
            f"config {config_path}: {where}{problem.rule}", EXIT_USAGE
        ) from None
    value = raw.get("control_socket", DEFAULT_CONTROL_SOCKET) if isinstance(raw, dict) else None
    if value is None:
        raise StatusUnavailable(
            f"config {config_path}: control_socket is null: that daemon has no control socket",
            EXIT_NOT_RUNNING,
        )
    if not isinstance(value, str) or not value.startswith("/"):
        raise StatusUnavailable(
            f"config {config_path}: control_socket {value!r} is not an absolute path", EXIT_USAGE
        )
    return value


def query_status(path: str, timeout: float) -> dict[str, Any]:
    """Send `{"command": "status"}` on the socket at `path`; the status document."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            # A daemon that turned us away may have answered already: read it all the same.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b'{"command": "status"}\n')
            data = _read_line(sock, deadline)
        except TimeoutError:
            raise StatusUnavailable(
                f"pingu did not answer within {timeout:g} s on control socket {path}",
                EXIT_TIMEOUT,
            ) from None
        except OSError as error:
            raise _unavailable(path, error) from None
    return _parse_reply(path, data)


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            if chunks:
                return b"".join(chunks)  # the reply came before the reset
            raise
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > REPLY_LIMIT:
            return b"".join(chunks)


def _unavailable(path: str, error: OSError) -> StatusUnavailable:
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return StatusUnavailable(
            f"pingu is not running: no control socket at {path}", EXIT_NOT_RUNNING
        )
    if error.errno == errno.ECONNREFUSED:
        return StatusUnavailable(
            f"pingu is not running: nothing answers on control socket {path} "
            "(left behind by a pingu that is gone, or not a socket)",
            EXIT_NOT_RUNNING,
        )
    if error.errno in (errno.EACCES, errno.EPERM):
        return StatusUnavailable(
            f"permission denied on control socket {path}: run as root, or as a member of "
            "the group set as control_group in the daemon's configuration",
            EXIT_DENIED,
        )
    return StatusUnavailable(f"control socket {path}: {error.strerror}", EXIT_FAILED)


def _parse_reply(path: str, data: bytes) -> dict[str, Any]:
    if not data:
        raise StatusUnavailable(f"pingu closed control socket {path} without a reply", EXIT_FAILED)
    if len(data) > REPLY_LIMIT:
        raise StatusUnavailable(f"reply on control socket {path} is too long", EXIT_FAILED)
    try:
        reply = json_limits.loads(
            data.split(b"\n", 1)[0].decode(), max_depth=REPLY_DEPTH, allow_constants=False
        )
    except ValueError:  # not UTF-8, not JSON, nested too deep, NaN or Infinity
        raise StatusUnavailable(
            f"unexpected reply on control socket {path}: not JSON: {data[:80]!r}", EXIT_FAILED
        ) from None
    if not isinstance(reply, dict):
        raise StatusUnavailable(f"unexpected reply on control socket {path}", EXIT_FAILED)
    if reply.get("ok") is not True:
        raise StatusUnavailable(
            f"pingu answered on {path} with an error: {reply.get('error', 'no reason given')}",
            EXIT_FAILED,
        )
    document = reply.get("status")
    if not isinstance(document, dict) or not isinstance(document.get("uplinks"), list):
        raise StatusUnavailable(
            f"unexpected reply on control socket {path}: no status document", EXIT_FAILED
        )
    return document


# -- the table a person reads ---------------------------------------------------------


def render(document: Mapping[str, Any], now: float | None = None) -> str:
    """The status document as a header line and one compact block per uplink."""
    now = time.time() if now is None else now
    try:
        lines = [_header(document)]
        events = document.get("events")
        for uplink in document["uplinks"]:
            lines.append("")
            lines.extend(_uplink_block(uplink, now, events))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise StatusUnavailable(
            f"unexpected status document ({type(error).__name__}: {error}); "
            "try `pingu status --json`",
            EXIT_FAILED,
        ) from None
    return "\n".join(lines)


def family_paths(uplink: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """An uplink's paths as (label, fields): `wan1` alone when it is managed in IPv4
    only (or the daemon predates families), else `wan1/ipv4`, `wan1/ipv6`."""
    families: Mapping[str, Mapping[str, Any]] = uplink.get("families") or {}
    if not families or list(families) == ["ipv4"]:
        return [(uplink["name"], uplink)]
    return [(f"{uplink['name']}/{family}", path) for family, path in families.items()]


def _header(document: Mapping[str, Any]) -> str:
    uplinks: Sequence[Mapping[str, Any]] = document["uplinks"]
    paths = [path for u in uplinks for _, path in family_paths(u)]
    routed = sum(1 for path in paths if path.get("route_installed"))
    single = len(paths) == len(uplinks) and all(len(family_paths(u)) == 1 for u in uplinks)
    counted = f"{len(uplinks)} uplinks" if single else f"{len(paths)} uplink families"
    parts = [
        f"pingu {document.get('version', '?')}",
        f"pid {document.get('pid', '?')}",
        f"up {duration(document.get('uptime_s'))}",
        f"{routed} of {counted} routed",
    ]
    families: Mapping[str, Mapping[str, Any]] = document.get("families") or {}
    if len(families) > 1:
        for family, state in families.items():
            if state.get("all_down"):
                parts.append(f"ALL DOWN in {family}: {_left(state.get('last_resort'))}")
    elif document.get("all_down"):
        parts.append(f"ALL DOWN: {_left(document.get('last_resort'))}")
    return " | ".join(parts)


def _left(kept: str | None) -> str:
    return f"last resort {kept}'s route kept" if kept else "no route left"


def link_trouble(uplink: Mapping[str, Any]) -> str:
    """` (interface absent)`, ` (no carrier)`, or nothing: what the uplink's link adds to
    its state."""
    link = uplink.get("link") or {}
    if not link.get("present", True):
        return " (interface absent)"
    if link.get("carrier") is False:
        return " (no carrier)"
    return ""


def _uplink_block(
    uplink: Mapping[str, Any], now: float, events: Sequence[Mapping[str, Any]] | None
) -> list[str]:
    trouble = link_trouble(uplink)
    lines: list[str] = []
    for label, path in family_paths(uplink):
        if lines:
            lines.append("")
        lines.append(f"{label}  {path['state']} for {duration(path.get('since_s'))}{trouble}")
        rows: list[tuple[str, str]] = [
            ("why", path.get("why") or "-"),
            ("gateway", gateway_text(path)),
            ("route", route_text(path, uplink.get("metric"))),
            ("last round", last_round_text(path.get("last_round"), now)),
        ]
        targets = (path.get("last_round") or {}).get("targets") or []
        rows.extend(("", _target(t)) for t in targets)
        family = path.get("family", "ipv4")
        rounds = ((uplink.get("families") or {}).get(family) or {}).get("rounds")
        if rounds is not None:  # a daemon that keeps a history
            rows.append(("rounds", rounds_text(rounds)))
        rows.append(("next round", next_round_text(path)))
        rows.append(("reset script", _reset_script(uplink.get("reset_script") or {}, now)))
        counters = path.get("counters")
        if counters:
            rows.append(("counters", _counters(counters)))
        if events is not None:
            mine = [e for e in events if (e["uplink"], e["family"]) == (uplink["name"], family)]
            rows.extend(_changes(mine, now))
        lines.extend(f"  {key:<13}{value}".rstrip() for key, value in rows)
    return lines


def rounds_text(rounds: Sequence[Mapping[str, Any]]) -> str:
    """The sparkline of the rounds kept, with its scale and the echoes lost in them."""
    from pingu.domain.views import SPARK_BLOCKS, Mark, spark_scale, sparkline  # noqa: PLC0415

    if not rounds:
        return "none yet"
    marks: list[Mark] = [
        (r.get("delay_ms"), int(r.get("received") or 0), int(r.get("lost") or 0)) for r in rounds
    ]
    words = [f"{len(marks)} round{'' if len(marks) == 1 else 's'}"]
    top = spark_scale(marks)
    if top is not None:
        words.append(f"{SPARK_BLOCKS[-1]} {top:.1f} ms")
    waited = sum(received + lost for _, received, lost in marks)
    words.append(f"{sum(lost for _, _, lost in marks)}/{waited} echoes lost")
    return f"{sparkline(marks)}  {', '.join(words)}"


def _changes(events: Sequence[Mapping[str, Any]], now: float) -> list[tuple[str, str]]:
    """The last state changes, newest first: time, id, from -> to, why, what pingu did."""
    if not events:
        return [("changes", "none since start-up")]
    rows: list[tuple[str, str]] = []
    for event in reversed(events[-CHANGES_SHOWN:]):
        did = ", ".join(event.get("changed") or [])
        text = (
            f"{clock_text(event['at'], now)} #{event['id']} {event['from']} -> {event['to']}: "
            f"{event.get('why')}{f'; {did}' if did else ''}"
        )
        rows.append(("changes" if not rows else "", text))
    if len(events) > CHANGES_SHOWN:
        rows.append(("", f"({len(events) - CHANGES_SHOWN} older: pingu status --json)"))
    return rows


def clock_text(when: str, now: float) -> str:
    """Local time of day within the last day (journalctl's clock), else date and time."""
    moment = datetime.fromisoformat(when)
    local = moment.astimezone()
    if now - moment.timestamp() < 86400:
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def gateway_text(uplink: Mapping[str, Any]) -> str:
    if not uplink.get("gateway_known"):
        return "not learned yet"
    return uplink.get("gateway") or "none (point-to-point)"


def route_text(path: Mapping[str, Any], metric: object) -> str:
    if path.get("route_installed"):
        return f"installed, metric {metric}"
    return f"not installed (metric {metric})"


def last_round_text(last: Mapping[str, Any] | None, now: float) -> str:
    if not last:
        return "none yet"
    targets = last.get("targets") or []
    sent = sum(int(t.get("sent") or 0) for t in targets)
    lost = sum(int(t.get("lost") or 0) for t in targets)
    abandoned = sum(int(t.get("abandoned") or 0) for t in targets)
    verdict = "passed" if last.get("passed") else "failed"
    text = f"{verdict} {_ago(last.get('at'), now)}: {sent} sent, {lost} lost"
    if abandoned:
        text += f", {abandoned} not waited for"
    if last.get("error"):
        text += f"; error: {last['error']}"
    return text


def _target(target: Mapping[str, Any]) -> str:
    abandoned = target.get("abandoned")
    gone = f", {abandoned} not waited for" if abandoned else ""
    return (
        f"  {target.get('address')}: {target.get('sent')} sent, {target.get('lost')} lost{gone}, "
        f"avg {_ms(target.get('avg_ms'))}, worst {_ms(target.get('max_ms'))}"
    )


def next_round_text(uplink: Mapping[str, Any]) -> str:
    if uplink.get("round_running"):
        return "running now"
    due = uplink.get("next_round_in_s")
    return "-" if due is None else f"in {duration(due)}"


def _reset_script(script: Mapping[str, Any], now: float) -> str:
    path = script.get("path")
    if not path:
        return "none"
    if script.get("running"):
        return f"{path}, running now"
    last = script.get("last_run")
    return f"{path}, last run {_ago(last, now)}" if last else f"{path}, never run"


def _counters(counters: Mapping[str, Any]) -> str:
    return (
        f"{counters.get('rounds', 0)} rounds, {counters.get('echoes_sent', 0)} echoes "
        f"({counters.get('echoes_lost', 0)} lost{_not_waited(counters)}), "
        f"{counters.get('state_changes', 0)} state "
        f"changes, {counters.get('reset_script_runs', 0)} reset script runs"
    )


def _not_waited(counters: Mapping[str, Any]) -> str:
    abandoned = counters.get("echoes_abandoned")
    return f", {abandoned} not waited for" if abandoned else ""


def _ago(when: str | None, now: float) -> str:
    if not when:
        return "-"
    seconds = now - datetime.fromisoformat(when).timestamp()
    return f"{duration(max(0.0, seconds))} ago"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def duration(seconds: float | None) -> str:
    """A short human duration: 0.4s, 42s, 12m05s, 3h04m, 2d03h."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
