"""The schema registry across a clean of its compacted ``_schemas`` topic (issue 15's leftover).

The registry rebuilds its state from ``_schemas`` at start; the broker's cleaner compacts that
topic. Here the cleaner is made to clean it for real (the topic's own configs: a low dirty ratio,
tombstones kept 0 ms; a segment rolled after each phase so the records become cleanable; the
cleaner woken) twice, so that superseded records go in the first clean and the tombstones of
hard deletes in the second. The broker is then restarted on the same data directory, and every
read the registry serves answers as it did before the clean: subjects (with and without
``deleted=true``), versions, ids, configs, compatibility and modes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from shoal.embedded import EmbeddedBroker
from shoal.storage.cleaner import read_cleaner_checkpoint
from shoal.storage.cleaner_thread import LogCleaner
from shoal.storage.log import PartitionLog

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
WAIT_S = 30.0
"""Bound on waiting for the cleaner thread (it usually takes well under a second)."""


def _record(name: str, *fields: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "fields": [{"name": f, "type": ["null", "string"], "default": None} for f in fields],
        }
    )


def _register(http: httpx.Client, subject: str, schema: str) -> int:
    response = http.post(f"/subjects/{subject}/versions", json={"schema": schema}, headers=CT)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _snapshot(http: httpx.Client, ids: list[int]) -> dict[str, Any]:
    """Every read the test's changes show through, as the HTTP API answers it."""
    all_subjects = _ok(http.get("/subjects", params={"deleted": "true"}))
    live_subjects = _ok(http.get("/subjects"))
    versions = {
        s: _ok(http.get(f"/subjects/{s}/versions", params={"deleted": "true"}))
        for s in all_subjects
    }
    by_version = {
        f"{s}/{v}": _ok(http.get(f"/subjects/{s}/versions/{v}", params={"deleted": "true"}))
        for s, vs in versions.items()
        for v in vs
    }
    by_id = {}
    for schema_id in ids:
        response = http.get(f"/schemas/ids/{schema_id}")
        by_id[schema_id] = (response.status_code, response.json())
    compatible = http.post(
        "/compatibility/subjects/orders-value/versions/latest",
        json={"schema": _record("Order", "a", "b", "c", "d")},
        headers=CT,
    )
    return {
        "subjects": live_subjects,
        "all_subjects": all_subjects,
        "versions": versions,
        "live_versions": {s: _ok(http.get(f"/subjects/{s}/versions")) for s in live_subjects},
        "by_version": by_version,
        "by_id": by_id,
        "global": _ok(http.get("/config")),
        "orders_config": _ok(http.get("/config/orders-value")),
        "users_config": http.get("/config/users-value").json(),
        "mode_users": _ok(http.get("/mode/users-value")),
        "compatible": (compatible.status_code, compatible.json()),
    }


def _schemas_log(broker: EmbeddedBroker) -> PartitionLog:
    logs = broker.app.logs
    assert logs is not None
    plog = logs.get("_schemas", 0)
    assert plog is not None
    return plog


def _cleaner(broker: EmbeddedBroker) -> LogCleaner:
    logs = broker.app.logs
    assert logs is not None and logs.cleaner is not None
    return logs.cleaner


def _clean_now(broker: EmbeddedBroker) -> None:
    """Roll the active segment (so everything written is cleanable) and wait, bounded, for the
    cleaner to have cleaned ``_schemas`` up to there (its checkpoint, the next first dirty
    offset, reaches the end)."""
    plog = _schemas_log(broker)
    plog.roll()
    end = plog.log_end_offset
    cleaner = _cleaner(broker)
    deadline = time.monotonic() + WAIT_S
    while (read_cleaner_checkpoint(plog) or 0) < end and time.monotonic() < deadline:
        cleaner.wake()
        time.sleep(0.05)
    assert (read_cleaner_checkpoint(plog) or 0) >= end, "the cleaner did not clean _schemas"
    assert plog.log_end_offset == end


def _read_topic(bootstrap: str) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "across-clean-check",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition("_schemas", 0, OFFSET_BEGINNING)])
    seen: list[tuple[int, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return seen
                continue
            seen.append((int(message.offset() or 0), message.key(), message.value()))
    finally:
        consumer.close()
    raise AssertionError("did not reach the end of _schemas")


def _make_schemas_dirty_fast(bootstrap: str) -> None:
    """The topic's own configs: clean at any dirt, drop tombstones on the next clean."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "_schemas",
        incremental_configs=[
            ConfigEntry(
                "min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET
            ),
            ConfigEntry("delete.retention.ms", "0", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)


def test_every_registry_read_answers_the_same_after_schemas_is_cleaned_and_replayed(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(log_cleaner_backoff_ms=50)
    data_dir = broker.app.settings.data_dir
    with httpx.Client(base_url=broker.http_url, timeout=30) as http:
        ids = [
            _register(http, "orders-value", _record("Order", "a")),
            _register(http, "orders-value", _record("Order", "a", "b")),
            _register(http, "orders-value", _record("Order", "a", "b", "c")),
            _register(http, "users-value", _record("User", "name")),
            _register(http, "users-value", _record("User", "name", "email")),
            _register(http, "gone-value", _record("Gone", "x")),
            _register(http, "hard-value", _record("Hard", "y")),
            _register(http, "orders-copy", _record("Order", "a")),  # shares an id
        ]
        _make_schemas_dirty_fast(broker.bootstrap_servers)
        _schemas_log(broker).roll()
        # Configs set, then changed: only the latest of each key must survive the clean.
        _ok(http.put("/config", json={"compatibility": "FORWARD"}, headers=CT))
        _ok(http.put("/config", json={"compatibility": "FULL"}, headers=CT))
        _ok(http.put("/config/orders-value", json={"compatibility": "NONE"}, headers=CT))
        _ok(http.put("/config/orders-value", json={"compatibility": "BACKWARD"}, headers=CT))
        _ok(http.put("/config/users-value", json={"compatibility": "NONE"}, headers=CT))
        _ok(http.delete("/config/users-value"))  # a tombstone for the subject's config
        _schemas_log(broker).roll()
        # Soft deletes (a version, a whole subject), then hard deletes (tombstones).
        assert _ok(http.delete("/subjects/orders-value/versions/2")) == 2
        assert _ok(http.delete("/subjects/gone-value")) == [1]
        assert _ok(http.delete("/subjects/users-value/versions/1")) == 1
        assert _ok(http.delete("/subjects/users-value/versions/1?permanent=true")) == 1
        assert _ok(http.delete("/subjects/hard-value")) == [1]
        assert _ok(http.delete("/subjects/hard-value?permanent=true")) == [1]
        _ok(http.put("/mode/users-value", json={"mode": "READONLY"}, headers=CT))
        before = _snapshot(http, ids)

        written = _read_topic(broker.bootstrap_servers)
        _clean_now(broker)
        # Something more to clean, so a second clean runs past the tombstones' horizon (0 ms).
        _ok(http.put("/config", json={"compatibility": "FULL"}, headers=CT))
        _clean_now(broker)
        assert _snapshot(http, ids) == before

    kept = _read_topic(broker.bootstrap_servers)
    broker.stop()
    # The clean did remove records: superseded ones, and the tombstones of hard deletes.
    assert len(kept) < len(written) - 5, (len(written), len(kept))
    assert all(value is not None for _offset, _key, value in kept), kept
    keys = [key for _offset, key, _value in kept]
    assert len(keys) == len(set(keys))

    # What the test expects, not only "the same as before".
    assert before["all_subjects"] == [
        "gone-value",
        "orders-copy",
        "orders-value",
        "users-value",
    ]
    assert before["subjects"] == ["orders-copy", "orders-value", "users-value"]
    assert before["versions"]["orders-value"] == [1, 2, 3]
    assert before["live_versions"]["orders-value"] == [1, 3]
    assert before["versions"]["users-value"] == [2]
    assert before["global"] == {"compatibilityLevel": "FULL"}
    assert before["orders_config"] == {"compatibilityLevel": "BACKWARD"}
    assert before["mode_users"] == {"mode": "READONLY"}
    assert before["by_id"][ids[6]][0] == 404  # hard-deleted: the id is gone
    assert before["by_id"][ids[1]][0] == 200  # soft-deleted: the id stays
    assert before["compatible"] == (200, {"is_compatible": True})

    with EmbeddedBroker(data_dir, log_cleaner_backoff_ms=50) as restarted:
        with httpx.Client(base_url=restarted.http_url, timeout=30) as http:
            assert http.get("/readyz").status_code == 200
            assert _snapshot(http, ids) == before
            # New ids do not reuse those the clean removed from the log.
            assert _register(http, "fresh-value", _record("Fresh", "z")) > max(ids)
