"""deploy/grafana/shoal.json: every query parses as PromQL (promtool) and names only series
shoal exports (the broker's /metrics or the framework's), and every row the issue asks for is
there."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.metrics.series import ROOT, known_series, series_in

DASHBOARD: Final = ROOT / "deploy" / "grafana" / "shoal.json"
PROMTOOL_TIMEOUT_S: Final = 60.0
GRAFANA_VARIABLES: Final = {
    "$__rate_interval": "1m",
    "$instance": ".*",
    "$topic": ".*",
    "$consumergroup": ".*",
    "$app": ".*",
}
"""What Grafana substitutes before a query reaches Prometheus (longest names first)."""


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    found += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return found


def test_every_query_names_only_series_shoal_exports() -> None:
    named: set[str] = set()
    for query in queries(dashboard()):
        series = series_in(query)
        assert series, f"a query that names no shoal series: {query}"
        named |= series
    assert named <= known_series(), sorted(named - known_series())
    # The families the issue names are on the dashboard.
    for wanted in (
        "kafka_consumergroup_lag_sum",
        "shoal_consumergroup_lag_seconds",
        "shoal_consumergroup_status",
        "shoal_topic_bytes_in_total",
        "shoal_request_duration_seconds_bucket",
        "shoal_fsync_duration_seconds_bucket",
        "shoal_messages_dead_lettered_total",
        "shoal_handler_duration_seconds_bucket",
    ):
        assert wanted in named, wanted


def test_the_rows_and_panels_are_well_formed() -> None:
    board = dashboard()
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Broker overview", "Topics", "Consumer groups", "Dead-letter topics",
                    "Framework apps"]  # fmt: skip
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.peer  # promtool (scripts/peers/prometheus.sh)
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses the expressions of a rule file: each query becomes a recording rule.
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for index, query in enumerate(queries(dashboard())):
        if query.startswith("label_values("):  # Grafana's own function around a selector
            query = query.removeprefix("label_values(").rsplit(",", 1)[0]
        for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
            query = query.replace(variable, GRAFANA_VARIABLES[variable])
        lines += [f"      - record: dashboard:query_{index}", f"        expr: {json.dumps(query)}"]
    rules = tmp_path / "dashboard_rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        ["promtool", "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
