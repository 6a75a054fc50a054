"""The status page at `/` of the metrics endpoint (issue 16, point 6): rendered from the
status document the read side writes, escaped, reloading itself; served beside /metrics."""

from __future__ import annotations

import contextlib
import copy
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from typing import Any

import pytest

from pingu.adapters.metrics import PAGE_HEADERS, MetricsServer
from pingu.domain.views import SPARK_LOST, sparkline
from pingu.entrypoints.status_page import REFRESH_S, page, render_page
from tests.unit.fakes import Driver, round_result
from tests.unit.operations_support import WAIT_S, LoopThread
from tests.unit.test_core import GW1, GW2, two_uplinks
from tests.unit.test_history import document, utc, wall

__all__ = ["utc"]  # the fixture, used by name

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>&amp;'
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "div", "section",
    "span", "table", "tr", "td", "th", "svg", "rect",
}  # fmt: skip


class Tree(HTMLParser):
    """Every start tag with its attributes, the text of the body, and what sits where."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._stack: list[tuple[str, dict[str, str | None]]] = []
        self.cards: dict[tuple[str, str], list[str]] = {}
        self.events: list[list[str]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in ("meta", "rect"):
            self._stack.append((tag, attributes))
        if tag == "section" and "data-uplink" in attributes:
            key = (str(attributes["data-uplink"]), str(attributes["data-family"]))
            self.cards[key] = []
        if tag == "tr" and "data-event" in attributes:
            self.events.append([])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag not in (open_tag for open_tag, _ in self._stack):
            return  # `</rect>` in a DOM serialised by a browser
        while self._stack and self._stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if not data.strip() or any(tag in ("style", "title") for tag, _ in self._stack):
            return
        self.text.append(data)
        for tag, attributes in reversed(self._stack):
            if tag == "section" and "data-uplink" in attributes:
                key = (str(attributes["data-uplink"]), str(attributes["data-family"]))
                self.cards[key].append(data)
                break
        if any(tag == "tr" and "data-event" in a for tag, a in self._stack):
            self.events[-1].append(data)


def failover() -> Driver:
    """wan1 passes three rounds, loses some echoes of one, then fails: down, wan2 up."""
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    for delay in (10.0, 20.0, 40.0):
        driver.finish("wan1", round_result(delay_ms=delay))
        driver.advance(5.0)
    driver.finish("wan1", round_result(received=3, delay_ms=40.0))
    driver.advance(5.0)
    driver.fail("wan1")
    driver.finish("wan2", round_result(delay_ms=7.0))
    return driver


def test_a_card_per_uplink_with_its_state_gateway_route_and_last_round(utc: None) -> None:
    driver = failover()
    tree = Tree(render_page(document(driver), now=wall(driver)))
    assert list(tree.cards) == [("wan1", "ipv4"), ("wan2", "ipv4")]
    sections = {
        a["data-uplink"]: a for tag, a in tree.tags if tag == "section" and a.get("data-uplink")
    }
    assert sections["wan1"]["class"] == "card down"
    assert sections["wan1"]["data-state"] == "down"
    assert sections["wan2"]["class"] == "card up"
    wan1 = " | ".join(tree.cards[("wan1", "ipv4")])
    assert wan1.startswith("wan1 | down | state | down for 0.0s | why | 203.0.113.10: 5/5 lost")
    assert f"gateway | {GW1}" in wan1
    assert "route | not installed (metric 100)" in wan1
    assert "last round | failed 0.0s ago: 5 sent, 5 lost" in wan1
    wan2 = " | ".join(tree.cards[("wan2", "ipv4")])
    assert f"gateway | {GW2}" in wan2
    assert "route | installed, metric 200" in wan2
    assert "last round | passed 0.0s ago: 5 sent, 0 lost" in wan2
    assert tree.text[0].startswith("pingu: 1/2 routed")


def test_the_rounds_are_drawn_as_bars_with_the_sparkline_of_pingu_status(utc: None) -> None:
    driver = failover()
    text = render_page(document(driver), now=wall(driver))
    tree = Tree(text)
    spark = next(a for tag, a in tree.tags if tag == "svg")  # wan1's
    assert spark["data-spark"] == f"▂▄█▒{SPARK_LOST}"
    wan1_start = text.index('data-uplink="wan1"')
    svg = text[text.index("<svg", wan1_start) : text.index("</svg>", wan1_start)]
    rects = Tree(svg).tags[1:]
    kinds = [a["class"] for _, a in rects]
    assert kinds == ["ok", "ok", "ok", "partial", "lost"]
    heights = [int(str(a["height"])) for _, a in rects]
    assert heights[:3] == [6, 12, 24]  # 10, 20, 40 ms against the largest: 40 ms
    assert heights[3:] == [24, 24]
    assert "5 rounds, █ 40.0 ms, 7/25 echoes lost" in " ".join(tree.cards[("wan1", "ipv4")])
    assert sparkline([(10.0, 5, 0), (20.0, 5, 0), (40.0, 5, 0)]) == "▂▄█"


def test_the_state_changes_are_listed_newest_first(utc: None) -> None:
    driver = failover()
    driver.advance(5.0)
    driver.finish("wan1", round_result(delay_ms=20.0))
    tree = Tree(render_page(document(driver), now=wall(driver)))
    assert [row[1:4] for row in tree.events] == [
        ["#2", "wan1", "down -> up"],
        ["#1", "wan1", "up -> down"],
    ]
    assert tree.events[1][5] == "route metric 100 removed"
    assert tree.events[0][0] == "08:00:25"


def test_no_change_yet_and_no_round_yet(utc: None) -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    tree = Tree(render_page(document(driver), now=wall(driver)))
    assert "none since start-up" in tree.text
    assert "none yet" in tree.cards[("wan2", "ipv4")]
    assert tree.events == []


def test_the_page_reloads_itself_and_needs_nothing_from_outside(utc: None) -> None:
    driver = failover()
    text = render_page(document(driver), now=wall(driver))
    tree = Tree(text)
    refresh = [a for tag, a in tree.tags if tag == "meta" and a.get("http-equiv") == "refresh"]
    assert refresh == [{"http-equiv": "refresh", "content": str(REFRESH_S)}]
    assert {tag for tag, _ in tree.tags} <= ALLOWED_TAGS
    for _, attributes in tree.tags:
        assert not {"src", "href", "action"} & set(attributes)
    assert "url(" not in text
    assert "@import" not in text
    assert text.startswith("<!DOCTYPE html>")


def test_what_comes_from_outside_cannot_add_markup(utc: None) -> None:
    driver = failover()
    status = document(driver)
    wan1 = status["uplinks"][0]
    wan1["name"] = HOSTILE
    wan1["why"] = HOSTILE
    wan1["gateway"] = HOSTILE
    wan1["metric"] = HOSTILE
    wan1["state"] = HOSTILE
    wan1["last_round"]["error"] = HOSTILE
    for path in wan1["families"].values():
        path["why"] = HOSTILE
        path["state"] = HOSTILE
    for event in status["events"]:
        event["uplink"] = HOSTILE
        event["why"] = HOSTILE
        event["changed"] = [HOSTILE]
        event["from"] = HOSTILE
    status["version"] = HOSTILE
    text = render_page(status, now=wall(driver))
    tree = Tree(text)
    assert {tag for tag, _ in tree.tags} <= ALLOWED_TAGS
    for _, attributes in tree.tags:
        assert not [name for name in attributes if name.startswith("on") or name == "src"]
    assert "<script" not in text
    assert "<img" not in text
    # the hostile text is shown, as text: where it was put
    (card,) = [key for key in tree.cards if key[0] == HOSTILE]
    assert HOSTILE in tree.cards[card]
    sections = [a for tag, a in tree.tags if tag == "section" and a.get("data-uplink") == HOSTILE]
    assert sections[0]["class"] == "card unknown"  # a state not known: not a class name
    assert any(HOSTILE in cell for row in tree.events for cell in row)
    assert any(HOSTILE in chunk for chunk in tree.text if "pid 42" in chunk)


def test_a_stale_status_a_missing_one_and_an_unexpected_one_say_so(utc: None) -> None:
    driver = failover()
    stale = Tree(render_page(document(driver), now=wall(driver), stale=True))
    assert stale.text[0] == "the daemon did not answer in time: this is an older status"
    assert "wan1" in " ".join(stale.text)
    missing = Tree(render_page(None))
    assert missing.text == ["no status from the daemon yet"]
    odd = Tree(render_page({"uplinks": [{"name": "wan1"}]}))
    assert odd.text[0].startswith("unexpected status document (KeyError")


def test_all_down_is_a_banner(utc: None) -> None:
    driver = failover()
    status = document(driver)
    status["families"]["ipv4"] = {"all_down": True, "last_resort": None}
    tree = Tree(render_page(status, now=wall(driver)))
    assert "ALL UPLINKS DOWN in ipv4: no route left" in tree.text


def test_a_dual_stack_uplink_has_a_card_per_family() -> None:
    driver = failover()
    status = document(driver)
    wan1 = status["uplinks"][0]
    ipv6 = copy.deepcopy(wan1["families"]["ipv4"])
    ipv6.update(family="ipv6", state="rising", gateway="fe80::1")
    wan1["families"]["ipv6"] = ipv6
    tree = Tree(render_page(status, now=wall(driver)))
    assert list(tree.cards) == [("wan1", "ipv4"), ("wan1", "ipv6"), ("wan2", "ipv4")]
    assert tree.cards[("wan1", "ipv6")][:2] == ["wan1/ipv6", "rising"]
    assert tree.events[0][2] == "wan1/ipv4"


# -- served beside /metrics ---------------------------------------------------------------


@contextlib.contextmanager
def serving(status: Mapping[str, Any]) -> Iterator[str]:
    with LoopThread() as loop:
        server = MetricsServer("127.0.0.1", 0, lambda: status, page)

        async def start() -> None:
            server.start()

        loop.run(start())
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            loop.run(server.close())


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_endpoint_serves_the_page_at_the_root_and_the_metrics_as_before() -> None:
    driver = failover()
    with serving(document(driver)) as base:
        status, headers, body = get(base + "/")
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src" not in headers["Content-Security-Policy"]
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert dict(PAGE_HEADERS)["X-Content-Type-Options"] == headers["X-Content-Type-Options"]
        assert int(headers["Content-Length"]) == len(body)
        assert list(Tree(body.decode()).cards) == [("wan1", "ipv4"), ("wan2", "ipv4")]

        queried = get(base + "/?x=<script>&refresh=0")
        assert queried[0] == 200
        assert b"<script" not in queried[2]
        assert Tree(queried[2].decode()).cards == Tree(body.decode()).cards

        status, headers, metrics = get(base + "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=")
        assert b'pingu_uplink_up{family="ipv4",uplink="wan2"} 1.0' in metrics

        for path in ("/index.html", "/metrics/", "/favicon.ico", "/../etc/passwd"):
            assert get(base + path)[0] == 404, path
        status, headers, _ = get(base + "/", method="POST")
        assert (status, headers["Allow"]) == (405, "GET")
        assert get(base + "/metrics", method="POST")[0] == 405  # prometheus_client's answer


def test_without_a_page_the_root_is_not_found() -> None:
    with LoopThread() as loop:
        server = MetricsServer("127.0.0.1", 0, dict)

        async def start() -> None:
            server.start()

        loop.run(start())
        try:
            assert get(f"http://127.0.0.1:{server.port}/")[0] == 404
            assert get(f"http://127.0.0.1:{server.port}/metrics")[0] == 200
        finally:
            loop.run(server.close())


@pytest.mark.parametrize("state", ["up", "failing", "down", "rising"])
def test_each_state_has_its_class(state: str) -> None:
    driver = failover()
    status = document(driver)
    status["uplinks"][1]["state"] = state  # an IPv4-only uplink: its version-1 fields
    sections = [a for tag, a in Tree(render_page(status)).tags if a.get("data-uplink") == "wan2"]
    assert sections[0]["class"] == f"card {state}"
