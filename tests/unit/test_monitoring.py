"""The fleet's files (packaging/prometheus, packaging/grafana): the alerting rules checked
and unit-tested by Debian's promtool, and every query of the rules and of the Grafana
dashboard naming only metrics that pingu's own metrics registry exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector

from pingu.adapters.metrics import StatusCollector
from tests.unit.operations_support import LoopThread, status_document

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "packaging" / "prometheus" / "pingu-rules.yml"
RULES_TESTS = ROOT / "packaging" / "prometheus" / "pingu-rules.test.yml"
DASHBOARD = ROOT / "packaging" / "grafana" / "pingu-dashboard.json"
# Where scripts/test-all unpacks promtool out of Debian's prometheus package.
PROMTOOL_CACHE = ROOT / ".cache" / "debian" / "usr" / "bin" / "promtool"
PROMTOOL_TIMEOUT_S = 60
# The one series the rules read that pingu does not export: Prometheus records it for
# every target it scrapes (1 scraped, 0 not).
PROMETHEUS_OWN = frozenset({"up"})

ALERTS = (
    "PinguUplinkDown",
    "PinguAllUplinksDown",
    "PinguUplinkFlapping",
    "PinguStatusStale",
    "PinguRoundsStalled",
    "PinguMetricsAbsent",
)


# -- promtool --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from scripts/test-all's cache, else from PATH; under CI or root a missing
    promtool fails the tests (scripts/test-all fetches it), it never skips them."""
    if os.access(PROMTOOL_CACHE, os.X_OK):
        return str(PROMTOOL_CACHE)
    found = shutil.which("promtool")
    if found:
        return found
    reason = (
        f"promtool not found in {PROMTOOL_CACHE.relative_to(ROOT)} nor on PATH "
        "(scripts/test-all fetches it from Debian's prometheus package)"
    )
    if os.environ.get("CI") or os.geteuid() == 0:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def run_promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = run_promtool(promtool, "check", "rules", RULES.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_the_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    done = run_promtool(promtool, "test", "rules", RULES_TESTS.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("for: 5m", "for: 1m"),  # the uplink-down alert would fire after a minute
        ("pingu_all_down == 1", "pingu_all_down == 0"),  # fires when all is well
        ("> 6", "> 40"),  # flapping never fires
        ("up == 0 and on (instance, job)", "up == 0 or on (instance, job)"),  # any target
    ],
)
def test_the_unit_tests_catch_a_broken_rule(
    promtool: str, tmp_path: Path, original: str, broken: str
) -> None:
    rules = RULES.read_text()
    assert original in rules
    (tmp_path / RULES.name).write_text(rules.replace(original, broken, 1))
    shutil.copy(RULES_TESTS, tmp_path / RULES_TESTS.name)
    assert run_promtool(promtool, "check", "rules", RULES.name, cwd=tmp_path).returncode == 0
    done = run_promtool(promtool, "test", "rules", RULES_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = RULES_TESTS.read_text()
    assert tuple(re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M)) == ALERTS
    for alert in ALERTS:
        blocks = re.findall(
            rf"alertname: {alert}\n\s*exp_alerts:(.*?)(?=\n\s*- eval_time:|\n\s*- name:|\Z)",
            tests,
            re.S,
        )
        assert any(b.strip() == "[]" for b in blocks), f"{alert} never tested not firing"
        assert any("exp_labels" in b for b in blocks), f"{alert} never tested firing"


def test_the_dashboards_queries_parse_in_prometheus(promtool: str, tmp_path: Path) -> None:
    """Every query of the dashboard, its Grafana variables replaced, as a recording rule:
    promtool parses each with Prometheus's own PromQL parser."""
    queries = dashboard_queries()
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, query in enumerate(queries):
        lines += [f"      - record: dashboard:query{number}", f"        expr: {json.dumps(query)}"]
    (tmp_path / "dashboard.yml").write_text("\n".join(lines) + "\n")
    done = run_promtool(promtool, "check", "rules", "dashboard.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


# -- the metric names ------------------------------------------------------------------

# Words of PromQL that are not metric names when they are not followed by "(": keywords,
# aggregation operators (`sum by (x) (...)`), and the literals Inf and NaN.
_KEYWORDS = frozenset(
    (
        *("and", "or", "unless", "by", "without", "on", "ignoring", "group_left"),
        *("group_right", "bool", "offset", "atan2", "sum", "min", "max", "avg", "group"),
        *("stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"),
        *("inf", "nan"),
    )
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (in matchers and label lists), durations or strings."""
    text = _STRING.sub('""', query)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_are_read_out_of_promql() -> None:
    assert metric_names(
        'sum by (uplink, family) (increase(pingu_a_total{uplink=~"$uplink",x="by(y)"}[5m]))'
        " / on (uplink) group_left (family) pingu_b offset 1h > bool 0.5e3"
    ) == {"pingu_a_total", "pingu_b"}
    assert metric_names("up == 0 and on (instance, job) max_over_time(pingu_c[1h:5m])") == {
        "up",
        "pingu_c",
    }
    assert metric_names("rate(nope:recorded[5m]) * 60 unless Inf") == {"nope:recorded"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """The sample names pingu's metrics endpoint serves: its registry built as
    MetricsServer.start builds it, collected over a status document with every section."""
    with LoopThread() as loop:
        registry = CollectorRegistry()
        registry.register(StatusCollector(status_document, loop.loop))
        ProcessCollector(registry=registry)
        names = {sample.name for metric in registry.collect() for sample in metric.samples}
    assert "pingu_uplink_up" in names  # the status was read, not only the build info
    return names


def rules_queries() -> list[str]:
    return re.findall(r"^\s*expr: (.+)$", RULES.read_text(), re.M)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


_GRAFANA_RANGES = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{__\w+\}")
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*\w+\)$")


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard (panels' targets, annotations and the
    variables' `label_values(SELECTOR, label)`), with Grafana's variables replaced as it
    would: durations by a duration, the others by a regex matching anything."""
    dashboard = json.loads(DASHBOARD.read_text())
    found: list[str] = []
    for node in _walk(dashboard):
        if isinstance(node.get("expr"), str):
            found.append(node["expr"])
        if node.get("type") == "query" and isinstance(node.get("definition"), str):
            match = _LABEL_VALUES.match(node["definition"])
            assert match, f"variable {node.get('name')}: not label_values(SELECTOR, label)"
            found.append(match.group(1))
    return [_GRAFANA_VARIABLE.sub(".*", _GRAFANA_RANGES.sub("5m", q)) for q in found]


def test_the_rules_read_only_metrics_that_pingu_exports(exported: set[str]) -> None:
    queries = rules_queries()
    assert len(queries) == len(ALERTS)
    used = set().union(*map(metric_names, queries))
    assert used - exported - PROMETHEUS_OWN == set()
    assert {"pingu_uplink_up", "pingu_all_down", "pingu_status_stale"} <= used


def test_the_dashboard_reads_only_metrics_that_pingu_exports(exported: set[str]) -> None:
    used = set().union(*map(metric_names, dashboard_queries()))
    assert used - exported == set()
    assert {
        "pingu_uplink_up",
        "pingu_uplink_route_installed",
        "pingu_uplink_last_loss_ratio",
        "pingu_uplink_last_delay_seconds",
        "pingu_uplink_state_changes_total",
        "pingu_uplink_conntrack_deleted_total",
        "pingu_uplink_sockets_destroyed_total",
        "pingu_all_down",
    } <= used


def test_a_metric_pingu_does_not_export_is_caught(exported: set[str]) -> None:
    assert metric_names('rate(pingu_uplink_failovers_total{uplink="wan1"}[5m])') - exported == {
        "pingu_uplink_failovers_total"
    }


# -- the dashboard as Grafana imports it -----------------------------------------------


def test_the_dashboard_is_importable_with_a_datasource_and_uplink_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("instance", "uplink", "family"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    repeated = [p for p in panels if p["type"] == "row" and p.get("repeat") == "uplink"]
    assert len(repeated) == 1  # a row of panels per uplink, each panel of that uplink only
    per_uplink = panels_after(repeated[0], panels)
    assert {p["title"] for p in per_uplink} >= {"State", "Loss", "Delay"}
    for panel in per_uplink:
        assert all('uplink=~"$uplink"' in t["expr"] for t in panel["targets"]), panel["title"]


def panels_after(row: dict[str, Any], panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The panels of a (not collapsed) row: those after it, up to the next row."""
    start = panels.index(row) + 1
    after = []
    for panel in panels[start:]:
        if panel["type"] == "row":
            break
        after.append(panel)
    return after
