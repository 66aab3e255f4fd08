"""``shoal bench``: Kafka's perf-test output lines, JSON figures, and what the records say.

One test runs the three modes in turn on one embedded broker (each start costs seconds);
the line formats and percentiles are checked without a broker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.cli import main
from shoal.cli.bench import RECORD_SIZE_MAX
from shoal.cli.perf_stats import (
    ProducerTotals,
    ProgressWindow,
    Throttle,
    consumer_line,
    kafka_percentiles,
    total_line,
    window_line,
)
from shoal.embedded import EmbeddedBroker
from tests.cli.support import Cli

PRODUCER_TOTAL = re.compile(
    r"^(\d+) records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
    r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$"
)


@pytest.fixture
def broker(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    """No initial rebalance delay: the consumer and e2e modes each join a new group, which
    would otherwise wait 3 s for more members."""
    return shoal_broker_factory(num_partitions=3, group_initial_rebalance_delay_ms=0)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_producer_consumer_and_e2e_against_a_broker(cli: Cli, tmp_path: Path) -> None:
    figures = tmp_path / "producer.json"
    produced = cli(
        "bench", "producer", "--topic", "perf", "--num-records", "2000", "--record-size", "100",
        "--throughput", "-1", "--partitions", "2", "--json", str(figures),
    )  # fmt: skip
    assert produced.code == 0, produced.err
    match = PRODUCER_TOTAL.match(produced.lines[-1])
    assert match and match.group(1) == "2000", produced.out
    written = json.loads(figures.read_text())
    assert written["records"] == 2000 and written["p50_ms"] <= written["p999_ms"]

    consumed = cli("bench", "consumer", "--topic", "perf", "--messages", "2000")
    assert consumed.code == 0, consumed.err
    header, values = consumed.lines[-2:]
    assert header.startswith("start.time, end.time, data.consumed.in.MB")
    fields = values.split(", ")
    assert len(fields) == 10 and fields[4] == "2000"
    assert float(fields[2]) == pytest.approx(2000 * 100 / 1024 / 1024, abs=1e-4)

    e2e = cli("bench", "e2e", "--topic", "e2e", "--num-records", "200", "--throughput", "500")
    assert e2e.code == 0, e2e.err
    assert e2e.lines[-1].startswith("200 records end to end at 500 records/sec")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["producer", "--topic", "t", "--num-records", "0", "--throughput", "1"], "positive"),
        (
            [
                "producer",
                "--topic",
                "t",
                "--num-records",
                "5",
                "--throughput",
                "1",
                "--record-size",
                str(RECORD_SIZE_MAX + 1),
            ],
            "record size over",
        ),
        (["e2e", "--topic", "t", "--num-records", "5", "--record-size", "4"], "at least 8"),
    ],
)
def test_bad_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any broker is contacted (none runs here): usage, exit code 2."""
    with pytest.raises(SystemExit) as exited:
        main(["bench", *argv, "-b", "127.0.0.1:1"])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_percentiles_are_kafkas() -> None:
    latencies = list(range(1, 1001))  # 1..1000 ms
    assert kafka_percentiles(latencies, (0.5, 0.95, 0.99, 0.999)) == [501, 951, 991, 1000]
    assert kafka_percentiles([], (0.5,)) == [0]


def test_lines_in_kafkas_format() -> None:
    window = ProgressWindow()
    for latency in (2, 4):
        window.add(latency, 100)
    assert window_line(window, 2.0) == (
        "2 records sent, 1.0 records/sec (0.00 MB/sec), 3.0 ms avg latency, 4.0 ms max latency."
    )
    totals = ProducerTotals()
    for latency in range(1, 11):
        totals.add(latency, 1024 * 1024)
    assert total_line(totals.summary(10.0)) == (
        "10 records sent, 1.000000 records/sec (1.00 MB/sec), 5.50 ms avg latency, "
        "10.00 ms max latency, 6 ms 50th, 10 ms 95th, 10 ms 99th, 10 ms 99.9th."
    )
    line, figures = consumer_line(
        start_s=0.0, end_s=2.0, records=1000, size_bytes=1024 * 1024, rebalance_ms=1000.0
    )
    assert line == (
        "1970-01-01 00:00:00:000, 1970-01-01 00:00:02:000, 1.0000, 0.5000, 1000, 500.0000, "
        "1000, 1000, 1.0000, 1000.0000"
    )
    assert figures["fetch_records_per_sec"] == 1000.0


def test_throttle_holds_the_rate() -> None:
    throttle = Throttle(100.0)
    assert throttle.delay_s(0, 10.0) == 0.0
    assert throttle.delay_s(50, 10.1) == pytest.approx(0.4)
    assert throttle.delay_s(50, 11.0) == 0.0
    assert Throttle(-1).delay_s(10**6, 0.0) == 0.0
