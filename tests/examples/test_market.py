"""The market-data example against a brute-force computation over the same feed.

One run on an embedded broker serves every check: a few seconds of feed with out-of-order and
late trades, sent as fast as it goes, in Avro with the schemas in the broker's registry, and
the bar service crashed once in the middle (a new instance restores its windows from the
changelogs and replays from the committed offsets); the quote service runs exactly-once
(transactional fetches), so its alerts are never repeated. Every bar published, every window
still open, every late trade, the latest-quote table and the spread alerts must equal what a
from-scratch computation over the trades topic gives. The program then runs unchanged on
Apache Kafka with shoal's standalone registry.
"""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.market.__main__ import _time_ms
from examples.market.__main__ import main as market_main
from examples.market.bars import ALLOWED_LATENESS_MS, BAR_WINDOWS, bar_of, vwap
from examples.market.feed import Event, FeedSettings, generate, replay_csv
from examples.market.latency import LatencyMonitor, percentile
from examples.market.pipeline import MarketRun, run_pipeline, run_replay
from examples.market.services import SPREAD_ALERT_BPS, Topics, bar_tables, quote_table

from shoal.app.serdes.registry import unframe
from shoal.app.transports.embedded import EMBEDDED_BROKERS
from tests.cli.support import closed_port, shoal_script
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT_S = 300
REGISTRY_START_S_MAX = 30.0
"""A hang guard for the standalone registry's start, not a timing expectation."""
FEED = FeedSettings(rate_per_s=1_500, seconds=3, symbols=4, seed=7, late_share=0.02)

Key = tuple[str, str, int]  # series, symbol, window start


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("market")


@pytest.fixture(scope="module")
def ran(workdir: Path) -> MarketRun:
    trades = sum(1 for _, e in generate(FEED, 0) if e.kind == "trade")
    # Started first so that it has no initial rebalance delay (3 s for every empty group the
    # services join, the restarted one too); the pipeline's App then shares it.
    broker = EMBEDDED_BROKERS.acquire(str(workdir / "broker"), group_initial_rebalance_delay_ms=0)
    try:
        return asyncio.run(
            run_pipeline(
                f"embedded://{workdir / 'broker'}",
                FEED,
                crash_bars_after=trades // 3,
                exactly_once=frozenset({"quotes"}),
            )
        )
    finally:
        EMBEDDED_BROKERS.release(broker)


def _brute_force(run: MarketRun) -> tuple[dict[Key, dict[str, Any]], dict[Key, Any], set[int]]:
    return _brute_force_over(run.trades)


def _brute_force_over(
    trades_topic: list[tuple[int, dict[str, Any]]],
) -> tuple[dict[Key, dict[str, Any]], dict[Key, Any], set[int]]:
    """(closed bars, open bars, late trade seqs) from (partition, trade) in offset order per
    partition alone: a trade is late when older than the newest before it minus the allowed
    lateness; each other trade is in every window holding its time; a window is closed once
    the partition's newest time minus the lateness reached its end."""
    members: dict[Key, list[tuple[int, int, int, int]]] = defaultdict(list)
    partition_of: dict[str, int] = {}
    newest: dict[int, int] = {}
    late: set[int] = set()
    for partition, t in trades_topic:
        partition_of[t["symbol"]] = partition
        seen = newest.get(partition)
        if seen is not None and t["ts"] < seen - ALLOWED_LATENESS_MS:
            late.add(t["seq"])
            continue
        newest[partition] = t["ts"] if seen is None else max(seen, t["ts"])
        for series, spec in BAR_WINDOWS.items():
            start = t["ts"] - t["ts"] % spec.advance_ms
            while start > t["ts"] - spec.size_ms and start >= 0:
                members[(series, t["symbol"], start)].append(
                    (t["ts"], t["seq"], t["price"], t["size"])
                )
                start -= spec.advance_ms
    closed: dict[Key, dict[str, Any]] = {}
    still_open: dict[Key, Any] = {}
    for key, trades in members.items():
        series, symbol, start = key
        end = start + BAR_WINDOWS[series].size_ms
        bar = bar_of(trades)
        if end <= newest[partition_of[symbol]] - ALLOWED_LATENESS_MS:
            closed[key] = bar
        else:
            still_open[key] = bar
    return closed, still_open, late


def test_the_bar_service_crashed_and_a_new_instance_took_over(ran: MarketRun) -> None:
    assert ran.crashes == 1
    assert ran.produced["trades"] > 1_000


def test_the_records_are_avro_framed_with_registered_schemas(ran: MarketRun) -> None:
    """Confluent's wire format (magic byte 0, schema id), decoded with the registry's schema:
    the trades read back are the trades sent."""
    ids = {unframe(m.value)[0] for m in ran.topics[Topics().trades]}
    assert len(ids) == 1
    sent = {e.seq: e for e in ran.events if e.kind == "trade"}
    assert len(ran.trades) == len(sent)
    for _, trade in ran.trades:
        assert trade == {k: v for k, v in sent[trade["seq"]].to_json().items() if k != "kind"}


def test_published_bars_equal_the_brute_force(ran: MarketRun) -> None:
    closed, _, _ = _brute_force(ran)
    published: dict[Key, dict[str, Any]] = {}
    for bar in ran.bars:
        key = (bar["series"], bar["symbol"], bar["start"])
        assert bar["end"] - bar["start"] == BAR_WINDOWS[bar["series"]].size_ms
        # A replay after the crash may publish a bar again: only ever the same bar.
        assert published.setdefault(key, bar) == bar, f"bar {key} published twice, differently"
    assert {k: {f: b[f] for f in closed[k]} for k, b in published.items()} == closed
    for key, bar in published.items():
        assert math.isclose(bar["vwap"], vwap(closed[key]))
    # (A 1 min bar closes too when the feed happens to cross a minute of the clock.)
    assert {"1s", "5s-every-1s"} <= {k[0] for k in closed}


def test_open_windows_restored_from_the_changelogs_equal_the_brute_force(ran: MarketRun) -> None:
    _, still_open, _ = _brute_force(ran)
    restored: dict[Key, Any] = {}
    for series, table in bar_tables(Topics()).items():
        table.restore(ran.topics[table.changelog], {0, 1, 2, 3, 4, 5, 6, 7})
        for symbol in table.keys():
            for window, bar in table.open_windows(symbol).items():
                restored[(series, symbol, window.start_ms)] = bar
    assert restored == still_open
    assert any(k[0] == "1m" for k in still_open)


def test_a_replay_from_a_time_recomputes_the_bars_from_there(ran: MarketRun, workdir: Path) -> None:
    """The bar service in a new group from a point inside the trades topic (by the records'
    timestamps): its bars equal a computation from scratch over each partition's trades from
    its first record at or after that time."""
    trades = ran.topics[Topics().trades]
    stamps = sorted(m.timestamp_ms for m in trades)
    # A fifth in: the rest spans over 2 s of event time, so some windows close in the replay
    # (a window closes once trades are 1 s past its end).
    start_at = stamps[len(stamps) // 5]
    broker = EMBEDDED_BROKERS.acquire(str(workdir / "broker"), group_initial_rebalance_delay_ms=0)
    try:
        replayed = asyncio.run(run_replay(f"embedded://{workdir / 'broker'}", start_at))
    finally:
        EMBEDDED_BROKERS.release(broker)
    started: set[int] = set()
    picked = []
    for msg, (partition, trade) in zip(trades, ran.trades, strict=True):
        if partition in started or msg.timestamp_ms >= start_at:
            started.add(partition)
            picked.append((partition, trade))
    assert 0 < len(picked) < len(trades)
    closed, _, _ = _brute_force_over(picked)
    published = {(b["series"], b["symbol"], b["start"]): b for b in replayed}
    assert len(published) == len(replayed), "a bar published twice in a run without crash"
    assert {k: {f: b[f] for f in closed[k]} for k, b in published.items()} == closed
    assert closed


def test_late_trades_went_to_the_side_topic(ran: MarketRun) -> None:
    _, _, late = _brute_force(ran)
    assert late, "the feed should have late trades"
    assert ran.late_seqs == late


def test_the_latest_quote_table_in_its_compacted_topic(ran: MarketRun) -> None:
    latest: dict[str, Event] = {}
    for event in ran.events:
        if event.kind == "quote":
            seen = latest.get(event.symbol)
            if seen is None or (event.ts_ms, event.seq) > (seen.ts_ms, seen.seq):
                latest[event.symbol] = event
    table = quote_table(Topics())
    table.restore(ran.topics[Topics().latest_quotes], set(range(8)))
    assert dict(table.items()) == {
        s: {"bid": e.bid, "ask": e.ask, "ts": e.ts_ms, "seq": e.seq} for s, e in latest.items()
    }


def test_alerts(ran: MarketRun) -> None:
    wide = {
        e.seq
        for e in ran.events
        if e.kind == "quote" and (e.ask - e.bid) / ((e.ask + e.bid) / 2) * 10_000 > SPREAD_ALERT_BPS
    }
    assert wide
    spread_alerts = [a["seq"] for a in ran.alerts if a["alert"] == "wide spread"]
    assert sorted(spread_alerts) == sorted(wide)  # exactly once each
    for alert in ran.alerts:
        if alert["alert"] == "trade off quote":  # joined with the quote it was compared to
            mid = (alert["quote"]["bid"] + alert["quote"]["ask"]) / 2
            assert abs(alert["price"] - mid) / mid * 10_000 == pytest.approx(alert["bps"], 0.01)


def test_latency_was_measured_for_every_stage(ran: MarketRun) -> None:
    summary = ran.latency.summary()
    for stage in ("trade -> broker ack", "trade -> bars", "quote -> table", "trade -> join"):
        assert summary[stage]["count"] >= 1
        assert summary[stage]["p50"] <= summary[stage]["p99"] <= summary[stage]["p99.9"]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1_001)]
    assert percentile(values, 50) == 500
    assert percentile(values, 99) == 990
    assert percentile(values, 99.9) == 999
    monitor = LatencyMonitor()
    monitor.record("s", 1_000, 1_002.5)
    assert monitor.summary()["s"]["p50"] == 2.5


def test_the_feed_is_deterministic_and_out_of_order() -> None:
    first, again = generate(FEED, 1_000), generate(FEED, 1_000)
    assert first == again
    times = [e.ts_ms for _, e in first]
    assert times != sorted(times)
    assert {e.kind for _, e in first} == {"trade", "quote"}
    with pytest.raises(ValueError, match="symbols"):
        FeedSettings(symbols=9)


def test_csv_replay(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(
        "kind,symbol,ts,price,size,bid,ask\n"
        "trade,ACME,1000,101.5,10,,\n"
        "quote,ACME,1005,,,101.4,101.6\n"
    )
    events = list(replay_csv(path, start_ms=50_000))
    assert [(e.kind, e.ts_ms, e.price, e.bid) for e in events] == [
        ("trade", 50_000, 1_015_000, 0),
        ("quote", 50_005, 0, 1_014_000),
    ]
    path.write_text("kind,symbol,ts\nfill,ACME,1\n")
    with pytest.raises(ValueError, match="trade or quote"):
        list(replay_csv(path))


@pytest.fixture
def standalone_registry(kafka_peer: KafkaPeer, tmp_path: Path) -> Iterator[str]:
    """``shoal registry`` against the Apache Kafka peer: its URL."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(shoal_script(), "registry", "--bootstrap", kafka_peer.bootstrap_servers),
                *("--listen", f"127.0.0.1:{port}", "--topic", f"_schemas_market_{port}"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + REGISTRY_START_S_MAX
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/subjects", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                pytest.fail(f"the standalone registry did not start: {log_path.read_text()}")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_example_runs_as_a_program_on_apache_kafka(
    kafka_peer: KafkaPeer, standalone_registry: str
) -> None:
    """Unchanged on the reference broker: only the URLs differ (topics get a namespace). Its
    four topics' Avro schemas end up in shoal's standalone registry, which keeps them on that
    Apache Kafka cluster."""
    broker = f"kafka://{kafka_peer.bootstrap_servers}"
    done = subprocess.run(
        # 2.5 s of feed (sent at once): the first 1 s bars close once trades are 1 s past them
        [
            *(sys.executable, "-m", "examples.market", "--broker", broker),
            *("--registry", standalone_registry, "--seconds", "2.5", "--rate", "200"),
            "--as-fast-as-possible",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Bars published: \{'1s': [1-9]", done.stdout), done.stdout
    assert "p99.9 ms" in done.stdout
    subjects = httpx.get(f"{standalone_registry}/subjects", timeout=10).json()
    assert sorted(s.split("market.", 1)[1] for s in subjects) == [
        "alerts-value",
        "bars-value",
        "quotes-value",
        "trades-value",
    ]


def test_avro_on_another_broker_needs_a_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        market_main(["--broker", "kafka://127.0.0.1:1"])
    assert exited.value.code == 2
    assert "needs --registry URL" in capsys.readouterr().err


def test_replay_times_are_iso_or_ms(capsys: pytest.CaptureFixture[str]) -> None:
    assert _time_ms("1700000000123") == 1_700_000_000_123
    assert _time_ms("2023-11-14T22:13:20") == 1_700_000_000_000  # UTC unless it says
    assert _time_ms("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    with pytest.raises(SystemExit):
        market_main(["--broker", "kafka://127.0.0.1:1", "--replay-from", "yesterday"])
    assert "not ISO 8601 or ms since the epoch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        market_main(["--replay-from", "5"])  # the default embedded broker starts empty
    assert "--replay-from needs --broker" in capsys.readouterr().err


def test_the_live_view_says_what_the_pipeline_waits_for_before_the_feed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before the feed starts, a live line names the wait (the groups' first assignment takes
    Kafka's 3 s rebalance delay) instead of a line of zeros; once it starts, the counters."""
    import examples.market.__main__ as cli

    lines: list[str] = []
    printed = asyncio.Event()

    def capture(line: str, **_: object) -> None:
        lines.append(line)
        printed.set()

    async def next_line() -> str:
        printed.clear()
        await asyncio.wait_for(printed.wait(), 30)
        return lines[-1]

    monkeypatch.setattr(cli, "LIVE_INTERVAL_S", 0.001)
    monkeypatch.setattr(cli, "print", capture, raising=False)
    monitor = LatencyMonitor()
    monitor.setting_up = "the services joining their groups"

    async def watch() -> tuple[str, str]:
        live = asyncio.create_task(cli._live(monitor))
        waiting = await next_line()
        monitor.setting_up = None
        await next_line()  # a line may have been on its way
        counting = await next_line()
        live.cancel()
        return waiting, counting

    waiting, counting = asyncio.run(watch())
    assert waiting.endswith("waiting: the services joining their groups"), waiting
    assert "acked" in counting and "waiting" not in counting, counting
