"""``shoal topic``: create, list, describe, alter-config and delete against a real broker."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli.support import Cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

_TOPIC_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
"""Kafka's Uuid.toString: 16 bytes as URL-safe base64 without padding."""


def _auto_create(cli: Cli, topic: str) -> None:
    """A topic made by producing to it: needs no CreateTopics support from the broker."""
    result = cli("produce", topic, "-q", stdin=b"x\n")
    assert result.code == 0, result.err


def test_create_then_list_and_describe(cli: Cli) -> None:
    created = cli("topic", "create", "orders", "-p", "3", "-c", "retention.ms=60000")
    assert created.code == 0, created.err
    assert created.out == "Created topic orders.\n"

    listed = cli("topic", "list")
    assert listed.code == 0, listed.err
    assert "orders" in listed.lines

    as_json = json.loads(cli("topic", "list", "--format", "json").out)
    assert {"name": "orders", "partitions": 3} in as_json

    described = cli("topic", "describe", "orders")
    assert described.code == 0, described.err
    head, *partitions = described.lines
    fields = dict(re.findall(r"(\w+): ([^\t]*)", head))
    assert fields["Topic"] == "orders"
    assert fields["PartitionCount"] == "3"
    assert fields["ReplicationFactor"] == "1"
    assert fields["Configs"] == "retention.ms=60000"
    assert partitions == [
        f"\tTopic: orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1" for p in range(3)
    ]


def test_describe_layout_of_kafka_topics(cli: Cli) -> None:
    _auto_create(cli, "auto")  # three partitions: the broker fixture's default
    result = cli("topic", "describe", "auto")
    assert result.code == 0, result.err
    assert result.err == "", "configs should be described too"
    head, *partitions = result.lines
    match = re.fullmatch(
        r"Topic: auto\tTopicId: (\S+)\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: (.*)",
        head,
    )
    assert match is not None, head
    assert _TOPIC_ID.match(match.group(1)), match.group(1)
    assert partitions == [
        f"\tTopic: auto\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1" for p in range(3)
    ]


def test_describe_json(cli: Cli) -> None:
    _auto_create(cli, "auto")
    text_id = re.search(r"TopicId: (\S+)", cli("topic", "describe", "auto").out)
    result = cli("topic", "describe", "auto", "--format", "json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert text_id is not None and doc["topic_id"] == text_id.group(1)
    assert doc["name"] == "auto"
    assert doc["partition_count"] == 3
    assert doc["replication_factor"] == 1
    assert doc["partitions"] == [
        {"partition": p, "leader": 1, "replicas": [1], "isr": [1]} for p in range(3)
    ]
    assert doc["configs"] == {}, "no overrides on an auto-created topic"


def test_list_shows_auto_created_topics_sorted(cli: Cli) -> None:
    for name in ("zeta", "alpha", "mid"):
        _auto_create(cli, name)
    result = cli("topic", "list")
    assert result.code == 0, result.err
    names = [n for n in result.lines if not n.startswith("__")]
    assert names == ["alpha", "mid", "zeta"]


def test_create_existing_topic(cli: Cli) -> None:
    assert cli("topic", "create", "dup", "-p", "1").code == 0
    again = cli("topic", "create", "dup", "-p", "1")
    assert again.code == 1
    assert "already exists" in again.err
    tolerated = cli("topic", "create", "dup", "-p", "1", "--if-not-exists")
    assert tolerated.code == 0, tolerated.err
    assert tolerated.out == "Topic dup already exists.\n"


def test_create_refuses_an_invalid_name(cli: Cli) -> None:
    result = cli("topic", "create", "bad name!", "-p", "1")
    assert result.code == 1
    assert "bad name!" in result.err
    assert "Traceback" not in result.err


def test_alter_config_set_and_delete(cli: Cli) -> None:
    assert cli("topic", "create", "cfg", "-p", "1").code == 0
    altered = cli(
        "topic", "alter-config", "cfg", "--set", "retention.ms=1000", "--set", "segment.ms=5000"
    )
    assert altered.code == 0, altered.err
    assert altered.out == "Completed updating config for topic cfg.\n"
    doc = json.loads(cli("topic", "describe", "cfg", "--format", "json").out)
    assert doc["configs"] == {"retention.ms": "1000", "segment.ms": "5000"}

    assert cli("topic", "alter-config", "cfg", "--delete", "retention.ms").code == 0
    doc = json.loads(cli("topic", "describe", "cfg", "--format", "json").out)
    assert doc["configs"] == {"segment.ms": "5000"}


def test_delete_topic(cli: Cli) -> None:
    assert cli("topic", "create", "gone", "-p", "2").code == 0
    deleted = cli("topic", "delete", "gone")
    assert deleted.code == 0, deleted.err
    assert deleted.out == "Deleted topic gone.\n"
    assert "gone" not in cli("topic", "list").lines
    described = cli("topic", "describe", "gone")
    assert described.code == 1
    assert "does not exist" in described.err


def test_unknown_topic_errors(cli: Cli) -> None:
    for argv in (
        ("topic", "describe", "nope"),
        ("topic", "delete", "nope"),
        ("topic", "alter-config", "nope", "--set", "retention.ms=1"),
    ):
        result = cli(*argv)
        assert result.code == 1, argv
        assert "topic 'nope' does not exist" in result.err, (argv, result.err)
        assert "Traceback" not in result.err
    # Describing must not have created it on this auto-creating broker.
    assert cli("topic", "describe", "nope").code == 1


def test_usage_errors_exit_2(cli: Cli) -> None:
    for argv in (
        ("topic",),
        ("topic", "create"),
        ("topic", "create", "x", "-c", "no-equals-sign"),
        ("topic", "create", "x", "-p", "0"),
        ("topic", "create", "x", "-p", "many"),
        ("topic", "alter-config", "x"),
        ("topic", "alter-config", "x", "--set", "a=1", "--delete", "a"),
        ("topic", "list", "--format", "xml"),
    ):
        result = cli(*argv)
        assert result.code == 2, argv
        assert "usage: shoal topic" in result.err, (argv, result.err)
