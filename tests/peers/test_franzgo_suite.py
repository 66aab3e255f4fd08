"""franz-go's integration suite (pkg/kgo, pinned in scripts/peers/franzgo.sh) against shoal.

franz-go is the strictest Kafka client we have: its tests produce and consume hundreds of
thousands of records through groups that rebalance under load, purge and pause partitions, delete
topics under a running client, and check every offset. The run must end with zero failures; the
only tests left out are those in ``franzgo_skips.txt`` (features shoal has not built), each with
its reason. Go or franz-go missing is a failure (run ``make peers``), never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.peers.franzgo import (
    RECORDS_DEFAULT,
    TLS_SKIPS_FILE,
    FranzGoTests,
    ShoalBrokerServer,
    TlsFiles,
    install,
    list_tests,
    read_skips,
    run_suite,
)
from tests.peers.kafka_peer import KafkaPeer
from tests.server.tls_support import Pki

# Bounds the install (a first compile takes minutes) plus the suite's own 12 minute timeout.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

BROKER_TESTS_EXPECTED = ("TestGroupETL", "TestClient_Produce", "TestIssue434", "TestPauseIssue489")
"""Tests that need the broker for every step (topics, produce, groups, fetch): that they pass
shows the run reached shoal, rather than only franz-go's unit tests passing."""

TLS_RECORDS = 10_000
"""KGO_TEST_RECORDS for the TLS run: a fifth of the plaintext run's, enough for the ETL tests'
groups to rebalance under load (SHOAL_FRANZGO_RECORDS overrides both)."""


@pytest.fixture(scope="module")
def franzgo() -> FranzGoTests:
    return install()


def test_skip_list_names_tests_of_the_pinned_suite(franzgo: FranzGoTests) -> None:
    skips = {**read_skips(), **read_skips(TLS_SKIPS_FILE)}
    stale = sorted(set(skips) - list_tests(franzgo))
    assert not stale, f"franzgo_skips.txt names tests the pinned franz-go does not have: {stale}"


def test_franzgo_kgo_suite_passes_against_shoal(franzgo: FranzGoTests, tmp_path: Path) -> None:
    skips = read_skips()
    records = int(os.environ.get("SHOAL_FRANZGO_RECORDS", RECORDS_DEFAULT))
    with ShoalBrokerServer(tmp_path / "shoal") as broker:
        log_path = tmp_path / "franzgo.log"
        result = run_suite(franzgo, broker.seeds, log_path, records, skip=list(skips))
        broker_alive = broker.running
    # All of it (log_text() is the tail), read after the stop, which may log too.
    broker_log = broker.log_path.read_text(errors="replace")

    assert broker_alive, f"shoal broker died during the suite:\n{broker_log[-8000:]}"
    assert result.returncode == 0, (
        f"{result.failure_report()}\n--- shoal log ---\n{broker_log[-8000:]}"
    )
    assert not result.failed, result.failure_report()
    assert not result.ran & set(skips), "a test of the skip list ran: -test.skip did not apply"
    missing = [name for name in BROKER_TESTS_EXPECTED if name not in result.passed]
    assert not missing, f"these broker tests did not pass: {missing}\n{result.failure_report()}"
    # An exception inside the broker is a shoal bug even when franz-go retried past it.
    traceback_at = broker_log.find("Traceback")
    assert traceback_at < 0, broker_log[max(0, traceback_at - 2000) : traceback_at + 6000]


@pytest.mark.skipif(
    not read_skips(),
    reason="franzgo_skips.txt lists no test: no gap of shoal's to check against Apache Kafka",
)
def test_skipped_tests_pass_against_apache_kafka(
    franzgo: FranzGoTests,
    kafka_peer: KafkaPeer,
    tmp_path: Path,
) -> None:
    """Every skip is a gap of shoal's: the same tests pass against the Kafka 4.x reference."""
    skips = read_skips()
    records = int(os.environ.get("SHOAL_FRANZGO_RECORDS", RECORDS_DEFAULT))
    result = run_suite(
        franzgo, kafka_peer.bootstrap_servers, tmp_path / "kafka.log", records, only=list(skips)
    )
    assert result.returncode == 0, result.failure_report()
    assert sorted(set(skips) - set(result.passed)) == [], result.failure_report()


def test_franzgo_kgo_suite_passes_over_tls(franzgo: FranzGoTests, tmp_path: Path) -> None:
    """The whole suite a second time, over TLS: ``KGO_TEST_TLS`` against shoal's SSL listener,
    its certificate from a CA made here. It costs no more than the plaintext run (75 s against
    150 s for that one in the same session, on a shared 2-core machine). Left out: the skip
    list, and the tests that cannot run over TLS (franzgo_tls_skips.txt). The ETL tests move
    TLS_RECORDS here: this run is about every request over TLS; the volume is the plaintext
    run's."""
    pki = Pki(tmp_path / "pki")
    tls = TlsFiles(keystore=pki.keystore, ca=pki.ca_file)
    skips = {**read_skips(), **read_skips(TLS_SKIPS_FILE)}
    records = int(os.environ.get("SHOAL_FRANZGO_RECORDS", TLS_RECORDS))
    with ShoalBrokerServer(tmp_path / "shoal", tls=tls) as broker:
        result = run_suite(
            franzgo, broker.seeds, tmp_path / "franzgo-tls.log", records, skip=list(skips), tls=tls
        )
        broker_alive = broker.running
    broker_log = broker.log_path.read_text(errors="replace")
    assert broker_alive, f"shoal broker died during the suite:\n{broker_log[-8000:]}"
    assert result.returncode == 0, (
        f"{result.failure_report()}\n--- shoal log ---\n{broker_log[-8000:]}"
    )
    assert not result.failed, result.failure_report()
    assert not result.ran & set(skips), "a test of the skip lists ran: -test.skip did not apply"
    missing = [name for name in BROKER_TESTS_EXPECTED if name not in result.passed]
    assert not missing, f"these broker tests did not pass: {missing}\n{result.failure_report()}"
    traceback_at = broker_log.find("Traceback")
    assert traceback_at < 0, broker_log[max(0, traceback_at - 2000) : traceback_at + 6000]
