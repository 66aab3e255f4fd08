"""``/metrics`` scraped during a produce/consume/group run with real clients (confluent-kafka):
every family is there, counters only grow, histograms count what they measure, and the whole
exposition passes ``promtool check metrics``.

One broker for the module, with a PLAINTEXT and a SASL listener (for the authentication
counters) and one client quota (for the throttle counters).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Final

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.metrics.scrape import Scrape, parse, scrape
from tests.metrics.series import broker_families
from tests.server.wire import WireClient
from tests.support.sasl import add_user, auth_error, client_config

pytestmark = pytest.mark.integration

TIMEOUT_S: Final = 30.0
"""Bounds each client call; measures nothing."""
TOPIC: Final = "metrics-orders"
DLQ: Final = "metrics-orders.dlq"
RETAINED: Final = "metrics-retained"
"""A topic whose records expire after a second, for the retention counters."""
RETENTION_CHECK_S: Final = 0.2
GROUP: Final = "metrics-group"
RECORDS: Final = 200
CONSUMED: Final = 120
THROTTLED_CLIENT: Final = "metrics-slow"

KNOWN_PROMTOOL_PROBLEMS: Final = frozenset(
    {
        # kafka_exporter's name, kept unchanged for its dashboards (Grafana 7589).
        "kafka_consumergroup_lag_sum non-histogram and non-summary metrics should not have "
        '"_sum" suffix',
    }
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    data_dir = tmp_path_factory.mktemp("metrics")
    with EmbeddedBroker(
        str(data_dir),
        listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        sasl_enabled_mechanisms="SCRAM-SHA-256",
        quota_window_num=2,
        quota_window_size_seconds=1,
        retention_check_interval_s=RETENTION_CHECK_S,
    ) as started:
        add_user(started, "alice", "alice-secret", mechanisms=("SCRAM-SHA-256",))
        yield started


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker) -> tuple[Scrape, Scrape, Scrape]:
    """Scrapes before, during and after the run (the run happens once for the module)."""
    before = scrape(broker)
    _produce_and_consume(broker)
    _tail(broker)
    _authenticate(broker)
    _throttle(broker)
    _admin_error(broker)
    _expire(broker)
    response = httpx.get(f"{broker.http_url}/subjects", timeout=TIMEOUT_S)
    assert response.status_code == 200
    during = scrape(broker)
    _produce(broker, TOPIC, 20)
    after = scrape(broker)
    return before, during, after


def _produce(broker: EmbeddedBroker, topic: str, count: int, **config: str) -> None:
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "acks": "all", "linger.ms": 5, **config}
    )
    for i in range(count):
        producer.produce(topic, key=str(i % 7).encode(), value=b"v" * 100)
    assert producer.flush(TIMEOUT_S) == 0


def _produce_and_consume(broker: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(TOPIC, 2), NewTopic(DLQ, 1)]).values():
        future.result(TIMEOUT_S)
    _produce(broker, TOPIC, RECORDS)
    _produce(broker, DLQ, 3)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([TOPIC])
        consumed = 0
        for _ in range(600):  # bounded: ~60 s at most
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                consumed += 1
                if consumed == CONSUMED:
                    break
        assert consumed == CONSUMED
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def _tail(broker: EmbeddedBroker) -> None:
    """Read the DLQ to its end and keep polling: caught up, the Fetches long-poll."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "metrics-tail",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        consumer.assign([TopicPartition(DLQ, 0, 0)])
        read = 0
        for _ in range(100):  # bounded: ~10 s at most
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                read += 1
            elif read == 3:
                break
        assert read == 3
        for _ in range(5):  # about half a second caught up: several long polls
            assert consumer.poll(0.1) is None
    finally:
        consumer.close()


def _authenticate(broker: EmbeddedBroker) -> None:
    sasl = f"127.0.0.1:{broker.app.listener_port('SASL_PLAINTEXT')}"
    good = client_config(broker, "SCRAM-SHA-256", "alice", "alice-secret")
    good["bootstrap.servers"] = sasl
    admin = AdminClient(good)
    assert TOPIC in admin.list_topics(timeout=TIMEOUT_S).topics
    bad = client_config(broker, "SCRAM-SHA-256", "alice", "wrong")
    bad["bootstrap.servers"] = sasl
    assert auth_error(bad).code() == KafkaError._AUTHENTICATION


def _throttle(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers, client_id="metrics-admin") as admin:
        response = admin.request(
            ApiKey.ALTER_CLIENT_QUOTAS,
            1,
            {
                "entries": [
                    {
                        "entity": [{"entity_type": "client-id", "entity_name": THROTTLED_CLIENT}],
                        "ops": [{"key": "producer_byte_rate", "value": 1000.0, "remove": False}],
                    }
                ],
                "validate_only": False,
            },
        )
        assert [e.error_code for e in response.entries] == [ErrorCode.NONE]
    # 20 records of ~100 bytes in one go: well over 1000 bytes a second.
    _produce(broker, TOPIC, 20, **{"client.id": THROTTLED_CLIENT, "linger.ms": "50"})


def _expire(broker: EmbeddedBroker) -> None:
    """Records written to a topic with retention.ms=1000 are deleted once they expire."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    topic = NewTopic(RETAINED, 1, config={"retention.ms": "1000"})
    admin.create_topics([topic])[RETAINED].result(TIMEOUT_S)
    _produce(broker, RETAINED, 5)
    deadline = time.monotonic() + TIMEOUT_S
    while (
        scrape(broker).value("kafka_topic_partition_oldest_offset", topic=RETAINED, partition="0")
        < 5
    ):
        assert time.monotonic() < deadline, "retention did not delete the expired records"
        time.sleep(RETENTION_CHECK_S)


def _admin_error(broker: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    future = admin.create_topics([NewTopic(TOPIC, 2)])[TOPIC]
    with pytest.raises(Exception, match="already exists"):
        future.result(TIMEOUT_S)


# -- the checks -------------------------------------------------------------------------


def test_every_family_is_exported(run: tuple[Scrape, Scrape, Scrape]) -> None:
    _before, during, _after = run
    documented = broker_families()
    assert set(during.kinds) == set(documented), (
        "docs/metrics.md and /metrics disagree: "
        f"undocumented {sorted(set(during.kinds) - set(documented))}, "
        f"not exported {sorted(set(documented) - set(during.kinds))}"
    )
    for name, kind in documented.items():
        assert during.kinds[name] == kind, name


def test_counters_only_grow(run: tuple[Scrape, Scrape, Scrape]) -> None:
    before, during, after = run
    for earlier, later in ((before, during), (during, after)):
        for (name, labels), value in earlier.samples.items():
            family = _family_of(name, earlier)
            kind = earlier.kinds.get(family)
            if kind in ("counter", "histogram") and not name.endswith("_sum"):
                assert later.samples.get((name, labels), -1) >= value, (name, labels)
    assert after.value("shoal_topic_records_in_total", topic=TOPIC) > during.value(
        "shoal_topic_records_in_total", topic=TOPIC
    )


def test_histograms_count_requests_and_are_cumulative(run: tuple[Scrape, Scrape, Scrape]) -> None:
    _before, during, _after = run
    requests = during.series("shoal_requests_total")
    assert requests
    for labels, count in requests.items():
        assert during.samples[("shoal_request_duration_seconds_count", labels)] == count
        plus_inf = labels | {("le", "+Inf")}
        assert during.samples[("shoal_request_duration_seconds_bucket", plus_inf)] == count
    for family, kind in during.kinds.items():
        if kind != "histogram":
            continue
        buckets: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
        for labels, value in during.series(family + "_bucket").items():
            le = dict(labels)["le"]
            rest = frozenset(pair for pair in labels if pair[0] != "le")
            buckets.setdefault(rest, []).append((float(le), value))
        for rest, points in buckets.items():
            counts = [value for _, value in sorted(points)]
            assert counts == sorted(counts), (family, rest)
            assert counts[-1] == during.samples[(family + "_count", rest)]
    apis = {dict(labels)["api"] for labels in requests}
    assert {"Produce", "Fetch", "Metadata", "JoinGroup", "SyncGroup", "OffsetCommit"} <= apis


def test_traffic_matches_the_logs(run: tuple[Scrape, Scrape, Scrape]) -> None:
    before, during, _after = run
    produced = RECORDS + 20  # and the throttled client's
    assert during.value("shoal_topic_records_in_total", topic=TOPIC) == produced
    assert during.value("shoal_topic_records_in_total", topic=DLQ) == 3
    # Nothing was deleted: every byte appended is in the log.
    assert during.value("shoal_topic_bytes_in_total", topic=TOPIC) == during.total(
        "shoal_log_size_bytes", topic=TOPIC
    )
    assert during.total("kafka_topic_partition_current_offset", topic=TOPIC) == produced
    assert during.total("kafka_topic_partition_oldest_offset", topic=TOPIC) == 0
    assert during.value("kafka_topic_partitions", topic=TOPIC) == 2
    assert during.total("shoal_log_segments", topic=TOPIC) == 2
    assert during.value("shoal_topic_records_out_total", topic=TOPIC) >= CONSUMED
    assert during.value("shoal_topic_bytes_out_total", topic=TOPIC) > 0
    batches = during.value("shoal_produce_batch_size_bytes_count")
    assert batches > before.get("shoal_produce_batch_size_bytes_count")
    # acks=all: every appended batch was made durable by some fsync.
    assert during.value("shoal_fsync_duration_seconds_count") > 0
    assert during.value("shoal_fsync_batches_sum") == batches
    assert during.value("shoal_fetch_wait_seconds_count") > 0
    # The consumer caught up at times and long-polled for more.
    assert during.value("shoal_fetch_wait_seconds_sum") > 0
    assert during.value("shoal_retention_segments_deleted_total") >= 1
    assert during.value("shoal_retention_runs_total") > before.value("shoal_retention_runs_total")
    assert during.value("shoal_retention_seconds_total") > 0
    assert during.value("shoal_topic_records_in_total", topic=RETAINED) == 5
    assert during.value("shoal_log_size_bytes", topic=RETAINED, partition="0") == 0


def test_group_lag_in_records_seconds_and_status(run: tuple[Scrape, Scrape, Scrape]) -> None:
    _before, during, _after = run
    committed = during.total("kafka_consumergroup_current_offset", consumergroup=GROUP)
    assert committed == CONSUMED
    lag = during.value("kafka_consumergroup_lag_sum", consumergroup=GROUP, topic=TOPIC)
    assert lag == RECORDS + 20 - CONSUMED
    seconds = during.series("shoal_consumergroup_lag_seconds")
    lagging = [v for labels, v in seconds.items() if ("consumergroup", GROUP) in labels and v > 0]
    assert lagging  # some partition is behind, by records that have an age
    statuses = {
        dict(labels)["status"]: v
        for labels, v in during.series("shoal_consumergroup_status").items()
        if ("consumergroup", GROUP) in labels
    }
    assert set(statuses) == {"OK", "WARNING", "ERROR"}
    assert sum(statuses.values()) == 1
    partitions = during.total("shoal_consumergroup_partitions_by_status", consumergroup=GROUP)
    assert partitions == 2
    assert during.value("kafka_consumergroup_members", consumergroup=GROUP) == 0


def test_listeners_security_quotas_registry_process(run: tuple[Scrape, Scrape, Scrape]) -> None:
    before, during, _after = run
    assert during.value("shoal_authentication_failures_total", listener="SASL_PLAINTEXT") >= 1
    assert during.value("shoal_authentication_successes_total", listener="SASL_PLAINTEXT") >= 1
    assert during.value("shoal_authentication_failures_total", listener="PLAINTEXT") == 0
    accepted = during.value("shoal_connections_accepted_total", listener="PLAINTEXT")
    assert accepted > before.value("shoal_connections_accepted_total", listener="PLAINTEXT")
    assert during.value("shoal_connections", listener="PLAINTEXT") >= 0
    assert during.value("shoal_requests_in_flight", listener="PLAINTEXT") >= 0
    assert during.value("shoal_throttled_responses_total", api="Produce") >= 1
    assert during.value("shoal_throttle_time_seconds_total", api="Produce") > 0
    assert (
        during.value("shoal_request_errors_total", api="CreateTopics", error="TOPIC_ALREADY_EXISTS")
        == 1
    )
    assert (
        during.value(
            "shoal_request_errors_total", api="SaslAuthenticate", error="SASL_AUTHENTICATION_FAILED"
        )
        >= 1
    )
    assert during.value("shoal_registry_requests_total", method="GET", code="200") >= 1
    assert during.value("shoal_broker_ready") == 1
    assert during.value("process_cpu_seconds_total") > 0
    assert during.value("process_resident_memory_bytes") > 0
    assert during.value("process_open_fds") > 0
    assert during.total("shoal_data_dir_free_bytes") > 0
    assert during.value("shoal_log_directory_failed") == 0


@pytest.mark.peer  # promtool (scripts/peers/prometheus.sh)
def test_promtool_accepts_the_exposition(run: tuple[Scrape, Scrape, Scrape]) -> None:
    _before, _during, after = run
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=after.text,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    problems = {line.strip() for line in (result.stdout + result.stderr).splitlines() if line}
    assert problems <= KNOWN_PROMTOOL_PROBLEMS, problems
    # And prometheus-client's parser, which refuses malformed text, reads it again whole.
    assert parse(after.text).samples == after.samples


def test_a_deleted_topics_series_go_with_it(
    broker: EmbeddedBroker, run: tuple[Scrape, Scrape, Scrape]
) -> None:
    # Last in the module: the other tests compare scrapes in which the topic exists.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.delete_topics([RETAINED])[RETAINED].result(TIMEOUT_S)
    left = [key for key in scrape(broker).samples if ("topic", RETAINED) in key[1]]
    assert left == []


# -- helpers ------------------------------------------------------------------------------


def _family_of(sample: str, scrape_: Scrape) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        base = sample.removesuffix(suffix)
        if base != sample and scrape_.kinds.get(base) == "histogram":
            return base
    return sample
