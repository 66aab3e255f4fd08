"""deploy/prometheus/alerts.yml: valid for promtool, each alert fires and resolves in its unit
test (alerts_test.yml), and every series a rule names is one shoal exports."""

from __future__ import annotations

import re
import subprocess
from typing import Final

import pytest

from shoal.app.observability.metrics import Instruments
from tests.metrics.scrape import parse
from tests.metrics.series import ROOT, framework_series, known_series, series_in

pytestmark = pytest.mark.peer  # promtool (scripts/peers/prometheus.sh)

RULES: Final = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS: Final = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
PROMTOOL_TIMEOUT_S: Final = 60.0


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_alert_fires_and_resolves_in_promtools_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.MULTILINE)
    assert len(alerts) == len(set(alerts))
    # Each alert is tested at a time it fires (an expected alert) and one it has resolved
    # (exp_alerts: []), in the order alerts_test.yml writes them.
    checks = re.findall(
        r"alertname: (\w+)\n\s*exp_alerts:(?: (\[\]))?", RULE_TESTS.read_text(), re.MULTILINE
    )
    fired = {name for name, empty in checks if not empty}
    resolved = {name for name, empty in checks if empty}
    assert fired == set(alerts)
    assert resolved == set(alerts)


def test_rules_name_only_series_shoal_exports() -> None:
    expressions = re.findall(r"expr: (?:\|\n)?\s*(.+)$", RULES.read_text(), re.MULTILINE)
    assert expressions
    named = set().union(*(series_in(expression) for expression in expressions))
    assert named, expressions
    assert named <= known_series(), sorted(named - known_series())


def test_the_framework_exports_the_series_the_doc_lists() -> None:
    instruments = Instruments()
    instruments.processed("charge", "orders", 0.01)
    instruments.failed("charge", "orders", ValueError("x"))
    instruments.published("orders")
    instruments.lag("billing", "orders", 0, 3)
    instruments.breaker_state("payments", "open")
    body, _content_type = instruments.render()
    exported = parse(body.decode()).kinds
    assert exported == framework_series()
