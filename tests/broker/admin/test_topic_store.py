"""TopicStore keeps memory and topics.json in step: a change whose save fails is undone."""

from __future__ import annotations

import errno

import pytest

from shoal.broker.topics import TopicStore
from shoal.testing.faultfs import FaultyFileSystem

DATA = "/data"


def store_with_topic() -> tuple[FaultyFileSystem, TopicStore]:
    fs = FaultyFileSystem()
    fs.makedirs(DATA)
    store = TopicStore(fs, DATA)
    store.add("t", 2, {"retention.ms": "1000"})
    return fs, store


def test_a_failed_save_changes_nothing() -> None:
    fs, store = store_with_topic()
    topic = store.get("t")
    assert topic is not None

    for change in (
        lambda: store.set_configs("t", {"retention.ms": "5"}),
        lambda: store.set_partitions("t", 7),
        lambda: store.remove("t"),
        lambda: store.add("u", 1, {}),
    ):
        fs.fail_next_write(errno.ENOSPC)
        with pytest.raises(OSError):
            change()
        assert store.get("t") is topic and store.by_id(topic.topic_id) is topic
        assert (topic.partitions, topic.configs) == (2, {"retention.ms": "1000"})
        assert store.get("u") is None and len(store) == 1

    # What a restart loads agrees with what was served.
    reloaded = TopicStore(fs, DATA).get("t")
    assert reloaded is not None
    assert (reloaded.topic_id, reloaded.partitions, reloaded.configs) == (
        topic.topic_id,
        2,
        {"retention.ms": "1000"},
    )


def test_changes_persist() -> None:
    fs, store = store_with_topic()
    store.set_configs("t", {"segment.ms": "60000"})
    store.set_partitions("t", 5)
    store.add("u", 1, {})
    store.remove("u")
    reloaded = TopicStore(fs, DATA)
    topic = reloaded.get("t")
    assert topic is not None and (topic.partitions, topic.configs) == (5, {"segment.ms": "60000"})
    assert reloaded.get("u") is None
