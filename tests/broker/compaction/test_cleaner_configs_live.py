"""The log cleaner's broker configs on a running broker, through confluent-kafka's AdminClient
(issue 15, leftovers): DescribeConfigs shows the settings the cleaner runs with; a runtime
change of log.cleaner.backoff.ms reaches the cleaner thread at once and outlives a restart; a
config the cleaner takes at start only is refused and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)

from shoal.embedded import EmbeddedBroker
from shoal.storage.cleaner_thread import LogCleaner

TIMEOUT_S = 10.0


def _cleaner(broker: EmbeddedBroker) -> LogCleaner:
    logs = broker.app.logs
    assert logs is not None and logs.cleaner is not None
    return logs.cleaner


def _describe(admin: AdminClient, name: str) -> ConfigEntry:
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    entries = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    entry: ConfigEntry = entries[name]
    return entry


def _set(admin: AdminClient, name: str, value: str) -> None:
    op = AlterConfigOpType.SET
    resource = ConfigResource(
        ConfigResource.Type.BROKER,
        "1",
        incremental_configs=[ConfigEntry(name, value, incremental_operation=op)],
    )
    admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)


def test_cleaner_configs_are_described_and_the_runtime_ones_applied_at_once(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(log_cleaner_backoff_ms=60_000)
    data_dir = broker.app.settings.data_dir
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    backoff = _describe(admin, "log.cleaner.backoff.ms")
    assert (backoff.value, backoff.source) == ("60000", ConfigSource.STATIC_BROKER_CONFIG.value)
    assert not backoff.is_read_only
    threads = _describe(admin, "log.cleaner.threads")
    assert (threads.value, threads.is_read_only) == ("1", True)

    _set(admin, "log.cleaner.backoff.ms", "50")
    assert _cleaner(broker).settings.backoff_ms == 50
    backoff = _describe(admin, "log.cleaner.backoff.ms")
    assert (backoff.value, backoff.source) == ("50", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

    with pytest.raises(KafkaException, match="does not apply a runtime change"):
        _set(admin, "log.cleaner.threads", "2")
    assert _describe(admin, "log.cleaner.threads").value == "1"
    broker.stop()

    # The dynamic value is kept on disk and handed to the new cleaner thread at start.
    with EmbeddedBroker(data_dir, log_cleaner_backoff_ms=60_000) as restarted:
        assert _cleaner(restarted).settings.backoff_ms == 50
