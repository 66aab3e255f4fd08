"""Apache Kafka's kafka-configs tool (Java admin client) against shoal and, for reference, against
Apache Kafka: dynamic broker configs set, described and deleted cluster-wide (--entity-default,
which librdkafka cannot address) and for broker 1, and a static one refused.

Kafka applies a dynamic change a moment after it answers, so a describe after a change is
retried until it shows (bounded). Every change is deleted again: the Kafka peer is shared.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Final

import pytest

from tests.differential.scenarios import TIMEOUT_S
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

CONFIGS: Final = "org.apache.kafka.tools.ConfigCommand"


def configs(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return kafka_tool(CONFIGS, "--bootstrap-server", target, "--entity-type", "brokers", *args)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def described_until(target: str, entity: list[str], done: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    out = ok(configs(target, *entity, "--describe"))
    while not done(out) and time.monotonic() < deadline:
        time.sleep(0.2)
        out = ok(configs(target, *entity, "--describe"))
    return out


DEFAULT: Final = ["--entity-default"]
NODE: Final = ["--entity-name", "1"]


def test_dynamic_broker_configs_with_kafka_configs(target: str) -> None:
    retention = "log.retention.ms=3600000"
    try:
        ok(configs(target, *DEFAULT, "--alter", "--add-config", retention))
        ok(configs(target, *NODE, "--alter", "--add-config", "log.segment.bytes=2097152"))
        cluster = described_until(target, DEFAULT, lambda out: retention in out)
        assert (
            f"{retention} sensitive=false synonyms={{DYNAMIC_DEFAULT_BROKER_CONFIG:{retention}}}"
            in cluster
        )
        assert "min.insync.replicas=1 sensitive=false" in cluster
        node = described_until(target, NODE, lambda out: "log.segment.bytes=2097152" in out)
        assert (
            "log.segment.bytes=2097152 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:"
            "log.segment.bytes=2097152, DEFAULT_CONFIG:log.segment.bytes=1073741824}" in node
        )
    finally:
        ok(configs(target, *DEFAULT, "--alter", "--delete-config", "log.retention.ms"))
        ok(configs(target, *NODE, "--alter", "--delete-config", "log.segment.bytes"))
    cluster = described_until(target, DEFAULT, lambda out: "log.retention.ms" not in out)
    assert "log.retention.ms" not in cluster

    refused = configs(target, *NODE, "--alter", "--add-config", "log.dirs=/elsewhere")
    assert refused.returncode != 0
    assert "Cannot update these configs dynamically: [log.dirs]" in refused.stdout + refused.stderr
