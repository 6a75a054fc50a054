"""The status page of the metrics endpoint (issue 16, point 6) in a real headless Chromium
(Debian's), run in the daemon's namespace against a daemon in the lab: both uplinks up;
then wan1's upstream is cut and the same page, reloading itself, shows wan1 down and the
state change within one reload of the daemon seeing it. A screenshot is kept: under
$PINGU_ARTIFACTS (default `.artifacts/` in the repository), its path printed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pingu.entrypoints.status_page import REFRESH_S
from tests.netns.browser import Browser
from tests.netns.conftest import LabFactory
from tests.netns.daemon import Daemons, RunningDaemon
from tests.netns.test_status import FAST, WAIT_S, by_name, status_document
from tests.unit.test_status_page import Tree

pytestmark = pytest.mark.netns

# A third uplink with a name that the kernel and pingu accept, and that is markup: a veth
# in the daemon's namespace (its peer there too), without a gateway. Its card must show
# the name as text.
HOSTILE = "<script>\"&'"
PORT = 9737  # the daemon's namespace is new: nothing else listens on its loopback
LOAD_S = 5.0  # a reload of the page on two shared cores, at most
REPO = Path(__file__).resolve().parents[2]


def artifacts() -> Path:
    where = Path(os.environ.get("PINGU_ARTIFACTS") or REPO / ".artifacts")
    where.mkdir(parents=True, exist_ok=True)
    return where


def states(tree: Tree) -> dict[str, str]:
    return {
        str(a["data-uplink"]): str(a["data-state"])
        for tag, a in tree.tags
        if tag == "section" and "data-uplink" in a
    }


def hostile_state(pingu: RunningDaemon) -> str:
    (uplink,) = [u for u in status_document(pingu)["uplinks"] if u["name"] == HOSTILE]
    return str(uplink["state"])


def test_the_page_shows_a_failover_within_one_reload(
    lab_factory: LabFactory, tmp_path: Path
) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        "metrics": f"127.0.0.1:{PORT}",
        "interfaces": {
            "wan1": {"metric": 100, **FAST},
            "wan2": {"metric": 200, **FAST},
            HOSTILE: {"metric": 300, **FAST},
        },
    }
    lab.run("daemon", ["ip", "link", "add", HOSTILE, "type", "veth", "peer", "name", "hpeer"])
    for name in (HOSTILE, "hpeer"):
        lab.run("daemon", ["ip", "link", "set", name, "up"])
    with Daemons(tmp_path) as daemons, Browser(lab) as browser:
        pingu = daemons.start(lab, config)
        pingu.until(lambda: len(pingu.own_routes()) == 2, "routes for both uplinks", WAIT_S)
        pingu.until(
            lambda: [u["state"] for u in status_document(pingu)["uplinks"]][:2] == ["up", "up"],
            "both uplinks up in pingu status",
            WAIT_S,
        )
        pingu.until(
            lambda: all(
                u["families"]["ipv4"]["rounds"] for u in status_document(pingu)["uplinks"][:2]
            ),
            "a round of each in the history",
            WAIT_S,
        )
        browser.open(f"http://127.0.0.1:{PORT}/")
        page = Tree(browser.dom())
        assert states(page) == {"wan1": "up", "wan2": "up", HOSTILE: hostile_state(pingu)}
        assert page.text[0] == "pingu: 2/3 routed"
        # The hostile name is text in its card, nothing else: no element came of it.
        assert page.cards[(HOSTILE, "ipv4")][0] == HOSTILE
        assert not [tag for tag, _ in page.tags if tag in ("script", "b", "img")]
        assert browser.evaluate("document.scripts.length") == 0
        wan1 = page.cards[("wan1", "ipv4")]
        assert lab.gateway("wan1") in wan1
        assert "installed, metric 100" in wan1
        assert [a for tag, a in page.tags if tag == "svg"], "no sparkline drawn"
        assert not [row for row in page.events if row[2] != HOSTILE]  # no change yet

        # It reloads itself, without the test navigating: one load more per REFRESH_S.
        loads = browser.loads()
        browser.wait_load(loads, REFRESH_S + LOAD_S)

        lab.cut_upstream("wan1")
        cut = time.monotonic()
        seen_down: float | None = None  # when pingu status first said wan1 is down
        shown: Tree | None = None
        deadline = cut + WAIT_S + REFRESH_S + LOAD_S
        while time.monotonic() < deadline:
            if seen_down is None and by_name(status_document(pingu))["wan1"]["state"] == "down":
                seen_down = time.monotonic()
            browser.pump(0.5)  # the page reloads on its own meanwhile
            tree = Tree(browser.dom())
            if states(tree).get("wan1") == "down":
                shown = tree
                break
        shown_at = time.monotonic()
        assert shown is not None, "the page never showed wan1 down"
        # The daemon may have decided just before the status was asked: the page shows it
        # at most one reload (and the reload's own time) after pingu status does.
        down_at = seen_down if seen_down is not None else shown_at
        assert shown_at - down_at <= REFRESH_S + LOAD_S, (shown_at - down_at, shown_at - cut)
        assert browser.loads() > loads + 1, "the page was not reloaded by itself"

        assert {k: v for k, v in states(shown).items() if k != HOSTILE} == {
            "wan1": "down",
            "wan2": "up",
        }
        assert shown.text[0] == "pingu: 1/3 routed"
        assert "not installed (metric 100)" in shown.cards[("wan1", "ipv4")]
        (event,) = [row for row in shown.events if row[2] == "wan1"]
        assert event[3] == "up -> down"
        assert "lost" in event[4]
        assert event[5] == "route metric 100 removed"
        document = status_document(pingu)
        (record,) = [e for e in document["events"] if e["uplink"] == "wan1"]
        assert event[1] == f"#{record['id']}"

        png = browser.screenshot()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(png) > 10_000  # cards drawn, not a blank page
        shot = artifacts() / "status-page-failover.png"
        shot.write_bytes(png)
        print(f"status page screenshot: {shot} ({len(png)} bytes)")
        print(
            f"cut -> page shows wan1 down: {shown_at - cut:.1f} s "
            f"(pingu status said so {shown_at - down_at:.1f} s before the page)"
        )
        assert pingu.stop() == 0
