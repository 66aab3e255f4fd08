"""``shoal group``: its view matches the AdminClient's, reset-offsets is a dry run by default."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    Producer,
    ShareConsumer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from shoal.cli import live, main
from shoal.cli.live import Rates
from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import wait_until
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration

PARTITIONS = 3
RECORDS_PER_PARTITION = 10
CONSUMED_PER_PARTITION = 4
PATIENCE_S = 60.0


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    directory = tmp_path_factory.mktemp("cli-group")
    with EmbeddedBroker(
        str(directory), group_initial_rebalance_delay_ms=100, share_version=1
    ) as embedded:
        yield embedded


def _shoal(broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    capsys.readouterr()
    try:
        code = main([*argv, "-b", broker.bootstrap_servers])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Result(code, out, err)


def _setup(broker: EmbeddedBroker, topic: str) -> None:
    create_topic(broker, topic, PARTITIONS)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all"})
    for i in range(PARTITIONS * RECORDS_PER_PARTITION):
        producer.produce(topic, str(i).encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


def _consumer(broker: EmbeddedBroker, group: str, **extra: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "client.id": "cli-test-client",
            **extra,
        }
    )


def _consume_and_commit(consumer: Consumer, topic: str) -> None:
    """Commit offset CONSUMED_PER_PARTITION on every partition once assigned."""
    consumer.subscribe([topic])
    wait_until(
        lambda: len(consumer.assignment()) == PARTITIONS, PATIENCE_S, lambda: _poll(consumer)
    )
    assert len(consumer.assignment()) == PARTITIONS
    consumer.commit(
        offsets=[TopicPartition(topic, p, CONSUMED_PER_PARTITION) for p in range(PARTITIONS)],
        asynchronous=False,
    )


def _poll(consumer: Consumer) -> None:
    consumer.poll(0.1)


def _admin_offsets(broker: EmbeddedBroker, group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(
        30
    )
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def test_describe_matches_the_admin_client(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = group = "cli-describe"
    _setup(broker, topic)
    consumer = _consumer(broker, group)
    try:
        _consume_and_commit(consumer, topic)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        described = admin.describe_consumer_groups([group])[group].result(30)
        (member,) = described.members
        committed = _admin_offsets(broker, group)

        result = _shoal(broker, capsys, "group", "describe", group, "--format", "json")
        assert result.code == 0, result.err
        rows = json.loads(result.out)
        assert [(r["topic"], r["partition"]) for r in rows] == [
            (topic, p) for p in range(PARTITIONS)
        ]
        for row in rows:
            assert row["current_offset"] == committed[(topic, row["partition"])]
            assert row["log_end_offset"] == RECORDS_PER_PARTITION
            assert row["lag"] == RECORDS_PER_PARTITION - CONSUMED_PER_PARTITION
            assert row["consumer_id"] == member.member_id
            assert row["client_id"] == member.client_id == "cli-test-client"
            assert row["host"] == member.host

        text = _shoal(broker, capsys, "group", "describe", group)
        assert text.code == 0, text.err
        lines = text.out.splitlines()
        assert lines[0].split() == [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]
        first = lines[1].split()
        assert first[:6] == [group, topic, "0", "4", "10", "6"]
        assert first[6] == member.member_id

        listed = _shoal(broker, capsys, "group", "list", "--format", "json")
        assert {"group": group, "state": "Stable", "type": "consumer"} in json.loads(listed.out)
    finally:
        consumer.close()


def test_reset_offsets_is_a_dry_run_unless_executed(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = group = "cli-reset"
    _setup(broker, topic)
    consumer = _consumer(broker, group)
    try:
        _consume_and_commit(consumer, topic)
        # While a member is active, executing is refused clearly; a dry run still plans.
        busy = _shoal(
            broker,
            capsys,
            "group",
            "reset-offsets",
            group,
            "--all-topics",
            "--to-earliest",
            "--execute",
        )
        assert busy.code == 1
        assert "only be reset while it is Empty" in busy.err
    finally:
        consumer.close()
    before = _admin_offsets(broker, group)
    assert set(before.values()) == {CONSUMED_PER_PARTITION}

    dry = _shoal(broker, capsys, "group", "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[0].split() == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
    assert [line.split() for line in dry.out.splitlines()[1 : PARTITIONS + 1]] == [
        [group, topic, str(p), "0"] for p in range(PARTITIONS)
    ]
    assert _admin_offsets(broker, group) == before

    shifted = _shoal(
        broker,
        capsys,
        "group",
        "reset-offsets",
        group,
        "--topic",
        f"{topic}:1",
        "--shift-by",
        "-3",
        "--execute",
        "--format",
        "json",
    )
    assert shifted.code == 0, shifted.err
    assert json.loads(shifted.out) == [
        {"group": group, "topic": topic, "partition": 1, "new_offset": 1}
    ]
    assert _admin_offsets(broker, group) == {**before, (topic, 1): 1}

    latest = _shoal(
        broker, capsys, "group", "reset-offsets", group, "--all-topics", "--to-latest", "--execute"
    )
    assert latest.code == 0, latest.err
    assert set(_admin_offsets(broker, group).values()) == {RECORDS_PER_PARTITION}

    two = _shoal(
        broker,
        capsys,
        "group",
        "reset-offsets",
        group,
        "--all-topics",
        "--to-latest",
        "--to-earliest",
    )
    assert two.code == 2


def test_delete_of_a_non_empty_group_fails_clearly(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = group = "cli-delete"
    _setup(broker, topic)
    consumer = _consumer(broker, group)
    try:
        _consume_and_commit(consumer, topic)
        refused = _shoal(broker, capsys, "group", "delete", group)
        assert refused.code == 1
        assert refused.err.strip() == (
            f"shoal group delete: cannot delete group {group!r}: group {group!r} has active "
            "members; stop its consumers first"
        )
    finally:
        consumer.close()
    deleted = _shoal(broker, capsys, "group", "delete", group)
    assert deleted.code == 0, deleted.err
    listed = _shoal(broker, capsys, "group", "list", "--format", "json")
    assert group not in {g["group"] for g in json.loads(listed.out)}
    missing = _shoal(broker, capsys, "group", "describe", group)
    assert missing.code == 1


def test_describe_members_shows_kip848_epochs_and_assignments(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, group = "cli-group-848", "cli-848-group"
    _setup(broker, topic)
    consumer = _consumer(broker, group, **{"group.protocol": "consumer"})
    try:
        _consume_and_commit(consumer, topic)
        result = _shoal(broker, capsys, "group", "describe", group, "--members", "--format", "json")
        assert result.code == 0, result.err
        doc = json.loads(result.out)
        assert doc["state"].lower() == "stable"
        assert doc["assignor"] == "uniform"
        (member,) = doc["members"]
        assert member["client_id"] == "cli-test-client"
        assert member["member_epoch"] == doc["assignment_epoch"] >= 1
        assert member["assignment"] == {topic: list(range(PARTITIONS))} == member["target"]
        text = _shoal(broker, capsys, "group", "describe", group, "--members")
        assert text.code == 0, text.err
        assert "CURRENT-EPOCH" in text.out
        assert f"{topic}:0,1,2" in text.out
    finally:
        consumer.close()


def test_list_shows_share_groups(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """KIP-932 share groups are listed with their type (issue 16)."""
    topic, group = "cli-share", "cli-share-group"
    _setup(broker, topic)
    consumer = ShareConsumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    consumer.subscribe([topic])
    try:

        def listed() -> list[dict[str, str]]:
            doc: list[dict[str, str]] = json.loads(
                _shoal(broker, capsys, "group", "list", "--format", "json").out
            )
            return doc

        entry = {"group": group, "state": "Stable", "type": "share"}
        assert wait_until(lambda: entry in listed(), 30, lambda: consumer.poll(0.1))
        table = _shoal(broker, capsys, "group", "list")
        assert any(line.split() == [group, "Stable", "share"] for line in table.out.splitlines())
    finally:
        consumer.close()


# -- describe --watch and top (issue 17) ------------------------------------------------------


def test_describe_watch_and_top_print_a_snapshot_per_refresh(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """Piped (not a terminal), each refresh prints one table, so every reading is seen."""
    topic, group = "cli-watch", "cli-watch-group"
    _setup(broker, topic)
    consumer = _consumer(broker, group)
    try:
        _consume_and_commit(consumer, topic)
        watch = ("group", "describe", group, "--watch", "--interval", "0.05", "--iterations", "2")
        result = _shoal(broker, capsys, *watch)
        assert result.code == 0, result.err
        assert result.out.count(f"group {group} · Stable") == 2
        rows = [line.split() for line in result.out.splitlines() if f" {topic} " in line]
        assert len(rows) == 2 * PARTITIONS
        lag = str(RECORDS_PER_PARTITION - CONSUMED_PER_PARTITION)
        for row in rows:  # │ topic │ partition │ current │ end │ lag │ consumed/s │ ...
            cells = [c for c in row if c != "│"]
            assert cells[2:5] == [str(CONSUMED_PER_PARTITION), str(RECORDS_PER_PARTITION), lag]
            assert "cli-test-client" in cells
    finally:
        consumer.close()

    top = _shoal(broker, capsys, "top", "--interval", "0.05", "--iterations", "2")
    assert top.code == 0, top.err
    topic_rows = [line.split() for line in top.out.splitlines() if f" {topic} " in line]
    assert [[c for c in r if c != "│"][:3] for r in topic_rows] == [
        [topic, str(PARTITIONS), str(PARTITIONS * RECORDS_PER_PARTITION)]
    ] * 2
    group_rows = [[c for c in line.split() if c != "│"] for line in top.out.splitlines()]
    lag_total = str(PARTITIONS * (RECORDS_PER_PARTITION - CONSUMED_PER_PARTITION))
    assert [r[:4] for r in group_rows if r[:1] == [group]] == [[group, "Empty", "0", lag_total]] * 2

    bad = _shoal(broker, capsys, "group", "describe", group, "--watch", "--format", "json")
    assert bad.code == 2 and "--watch" in bad.err


def test_rates_are_differences_over_time() -> None:
    now = [100.0]
    rates = Rates(clock=lambda: now[0])
    assert rates.update({"t": 10}) == {"t": None}  # one reading: no rate yet
    now[0] = 102.0
    assert rates.update({"t": 30, "new": 5}) == {"t": 10.0, "new": None}
    now[0] = 103.0
    assert rates.update({"t": 25}) == {"t": 0.0}  # a reset (lower offset) is not negative


def test_top_takes_a_partitions_first_commit_as_its_baseline(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group that commits a partition for the first time, at offset 1,000,000, between two
    refreshes has consumed nothing in that refresh: the commit is where its count starts."""
    topic, group = "cli-top-baseline", "cli-top-baseline-group"
    _setup(broker, topic)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})

    def commit(partition: int, offset: int) -> None:
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition, offset)])]
        admin.alter_consumer_group_offsets(request)[group].result(PATIENCE_S)

    commit(0, CONSUMED_PER_PARTITION)

    def first_commit_between_refreshes(interval_s: float) -> None:
        commit(1, 1_000_000)
        time.sleep(interval_s)

    monkeypatch.setattr(live, "time", SimpleNamespace(sleep=first_commit_between_refreshes))
    top = _shoal(broker, capsys, "top", "--interval", "0.05", "--iterations", "2")
    assert top.code == 0, top.err
    rows = [[c for c in line.split() if c != "│"] for line in top.out.splitlines()]
    readings = [r for r in rows if r[:1] == [group]]
    # group, state, members, lag, consumed/s: no rate yet, then nothing consumed.
    assert [r[4] for r in readings] == ["-", "0.0"], readings
    assert readings[1][3] == str(RECORDS_PER_PARTITION - CONSUMED_PER_PARTITION)
    assert _admin_offsets(broker, group)[(topic, 1)] == 1_000_000  # the commit did happen
