"""The status page served at `/` of the metrics endpoint: the status document (the one
`pingu status --json` prints) as one small HTML page, for a box watched without Grafana.

A pure function of the document and the time: cards per uplink and family (state, why,
gateway, route, last round, the recent rounds drawn as bars), then the recent state
changes. The words are those of `pingu status` (the same helpers write them). No external
asset, no script: inline CSS, a `<meta http-equiv="refresh">` that reloads the page, and a
Content-Security-Policy (sent by the server) that forbids any script. Everything that comes
from outside (interface names, reasons, errors, script paths) goes through `html.escape`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pingu.domain.health import Health
from pingu.domain.views import Mark, spark_scale, sparkline
from pingu.entrypoints.status import (
    clock_text,
    duration,
    family_paths,
    gateway_text,
    last_round_text,
    link_trouble,
    next_round_text,
    rounds_text,
    route_text,
)

REFRESH_S = 5  # the page reloads itself this often
EVENTS_SHOWN = 20  # state changes listed, newest first (the document keeps a few per path)
BAR_W = 4  # width of one round's bar in the sparkline, in CSS pixels
BAR_H = 24
STATES = {h.value for h in Health}

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em;background:#f4f5f7;color:#222}
h1{font-size:1.2em;margin:0 0 .2em}
.head{color:#555;margin-bottom:1em}
.alert{background:#b00020;color:#fff;padding:.4em .8em;border-radius:4px;margin:.4em 0}
.stale{background:#8a6d00}
.cards{display:flex;flex-wrap:wrap;gap:1em}
.card{background:#fff;border-radius:6px;padding:.8em 1em;min-width:20em;flex:1 1 20em;
 border-left:6px solid #999;box-shadow:0 1px 2px rgba(0,0,0,.15)}
.card.up{border-color:#1b873f}.card.failing{border-color:#d08700}
.card.down{border-color:#b00020}.card.rising{border-color:#2f6fd0}
.card h2{font-size:1.1em;margin:0 0 .4em;display:flex;justify-content:space-between}
.state{font-size:.85em;padding:.1em .6em;border-radius:1em;color:#fff;background:#999}
.up .state{background:#1b873f}.failing .state{background:#d08700}
.down .state{background:#b00020}.rising .state{background:#2f6fd0}
table{border-collapse:collapse}
.card td{padding:.1em .6em .1em 0;vertical-align:top}
.card td:first-child{color:#666;white-space:nowrap}
svg.spark{display:block;background:#f0f0f0;margin:.2em 0}
.ok{fill:#1b873f}.partial{fill:#d08700}.lost{fill:#b00020}
.events{background:#fff;border-radius:6px;margin-top:1em;padding:.6em 1em}
.events td,.events th{padding:.15em .8em .15em 0;text-align:left;vertical-align:top}
.events th{color:#666;font-weight:normal}
""".strip()


def render_page(
    document: Mapping[str, Any] | None,
    *,
    now: float | None = None,
    stale: bool = False,
    refresh_s: int = REFRESH_S,
) -> str:
    """The whole page, as a string (UTF-8 when served)."""
    now = time.time() if now is None else now
    if document is None:
        document = {}
        body = _alert("no status from the daemon yet")
    else:
        try:
            body = _body(document, now)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
            body = _alert(f"unexpected status document ({type(error).__name__}: {error})")
    if stale:
        body = _alert("the daemon did not answer in time: this is an older status", "stale") + body
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(_title(document))}</title><style>{CSS}</style></head>\n"
        f"<body>{body}</body></html>\n"
    )


def _e(value: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def _title(document: Mapping[str, Any]) -> str:
    try:
        paths = [p for u in document["uplinks"] for _, p in family_paths(u)]
        routed = sum(1 for p in paths if p.get("route_installed"))
        return f"pingu: {routed}/{len(paths)} routed"
    except (KeyError, TypeError, AttributeError):
        return "pingu"


def _alert(text: str, kind: str = "") -> str:
    return f'<div class="alert {kind}" role="alert">{_e(text)}</div>'


def _body(document: Mapping[str, Any], now: float) -> str:
    uplinks: Sequence[Mapping[str, Any]] = document["uplinks"]
    parts = [f"<h1>{_e(_title(document))}</h1>", _header(document, now)]
    parts.extend(_all_down(document))
    parts.append('<div class="cards">')
    for uplink in uplinks:
        for label, path in family_paths(uplink):
            parts.append(_card(uplink, label, path, now))
    parts.append("</div>")
    parts.append(_events(document, now))
    return "\n".join(parts)


def _header(document: Mapping[str, Any], now: float) -> str:
    words = [
        f"pingu {document.get('version', '?')}",
        f"pid {document.get('pid', '?')}",
        f"up {duration(document.get('uptime_s'))}",
        f"updated {time.strftime('%H:%M:%S', time.localtime(now))}",
        f"reloads every {REFRESH_S} s",
    ]
    return f'<div class="head">{_e(" | ".join(words))}</div>'


def _all_down(document: Mapping[str, Any]) -> list[str]:
    families: Mapping[str, Mapping[str, Any]] = document.get("families") or {
        "ipv4": {"all_down": document.get("all_down"), "last_resort": document.get("last_resort")}
    }
    alerts = []
    for family, state in families.items():
        if state.get("all_down"):
            kept = state.get("last_resort")
            left = f"last resort {kept}'s route kept" if kept else "no route left"
            alerts.append(_alert(f"ALL UPLINKS DOWN in {family}: {left}"))
    return alerts


def _card(uplink: Mapping[str, Any], label: str, path: Mapping[str, Any], now: float) -> str:
    state = str(path["state"])
    kind = state if state in STATES else "unknown"  # a class name never from outside as is
    family = str(path.get("family", "ipv4"))
    trouble = link_trouble(uplink)
    rows = [
        ("state", f"{state} for {duration(path.get('since_s'))}{trouble}"),
        ("why", path.get("why") or "-"),
        ("gateway", gateway_text(path)),
        ("route", route_text(path, uplink.get("metric"))),
        ("last round", last_round_text(path.get("last_round"), now)),
        ("next round", next_round_text(path)),
    ]
    cells = "".join(f"<tr><td>{_e(key)}</td><td>{_e(value)}</td></tr>" for key, value in rows)
    rounds = ((uplink.get("families") or {}).get(family) or {}).get("rounds")
    if rounds is not None:
        cells += f"<tr><td>rounds</td><td>{_spark(rounds)}</td></tr>"
    return (
        f'<section class="card {kind}" data-uplink="{_e(uplink["name"])}" '
        f'data-family="{_e(family)}" data-state="{_e(state)}">'
        f'<h2><span class="name">{_e(label)}</span>'
        f'<span class="state">{_e(state)}</span></h2>'
        f"<table>{cells}</table></section>"
    )


def _spark(rounds: Sequence[Mapping[str, Any]]) -> str:
    """The recent rounds as bars (the height: the delay, to the scale of `pingu status`'s
    sparkline; amber: some echoes lost; red, full height: no reply), and the same line of
    `pingu status` below as text."""
    if not rounds:
        return "none yet"
    marks: list[Mark] = [
        (r.get("delay_ms"), int(r.get("received") or 0), int(r.get("lost") or 0)) for r in rounds
    ]
    top = spark_scale(marks)
    bars = []
    for index, (delay, received, lost) in enumerate(marks):
        if not received:
            kind, height = "lost", BAR_H
        elif lost:
            kind, height = "partial", BAR_H
        else:
            share = 1.0 if not top or delay is None else max(0.0, float(delay)) / top
            kind, height = "ok", max(2, round(share * BAR_H))
        bars.append(
            f'<rect class="{kind}" x="{index * BAR_W}" y="{BAR_H - height}" '
            f'width="{BAR_W - 1}" height="{height}"/>'
        )
    width = len(marks) * BAR_W
    text = rounds_text(rounds)
    return (
        f'<svg class="spark" width="{width}" height="{BAR_H}" viewBox="0 0 {width} {BAR_H}" '
        f'role="img" aria-label="{_e(sparkline(marks))}" data-spark="{_e(sparkline(marks))}">'
        f"{''.join(bars)}</svg>{_e(text.split('  ', 1)[-1])}"
    )


def _events(document: Mapping[str, Any], now: float) -> str:
    events: Sequence[Mapping[str, Any]] | None = document.get("events")
    labels = {  # how the cards name each path: `wan1`, or `wan1/ipv6` when dual-stack
        (uplink["name"], path.get("family", "ipv4")): label
        for uplink in document["uplinks"]
        for label, path in family_paths(uplink)
    }
    if events is None:  # a daemon that keeps no history
        return ""
    if not events:
        return '<section class="events"><h2>State changes</h2>none since start-up</section>'
    rows = []
    for event in list(events)[-EVENTS_SHOWN:][::-1]:
        family = event.get("family", "ipv4")
        name = labels.get((event.get("uplink"), family), f"{event.get('uplink')}/{family}")
        did = ", ".join(str(c) for c in event.get("changed") or [])
        cells = [
            clock_text(event["at"], now),
            f"#{event['id']}",
            name,
            f"{event['from']} -> {event['to']}",
            event.get("why") or "",
            did,
        ]
        rows.append(
            f'<tr data-event="{_e(event["id"])}">'
            + "".join(f"<td>{_e(cell)}</td>" for cell in cells)
            + "</tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("time", "event", "uplink", "change", "why", "did"))
    return (
        '<section class="events"><h2>State changes</h2>'
        f"<table><tr>{head}</tr>{''.join(rows)}</table></section>"
    )


def page(document: Mapping[str, Any] | None, stale: bool, now: float) -> str:
    """render_page as the metrics server calls it (its PageRenderer)."""
    return render_page(document, now=now, stale=stale)
