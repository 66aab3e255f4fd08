"""EIO on fsync under the workload: never acknowledged, the directory fails, nothing is lost.

While the workload runs, every fsync under one partition's directory starts failing with EIO
(the fault layer's ``fail_fsyncs_under``). What Kafka does: the log manager marks the whole log
directory offline (LogDirFailureChannel) and its partitions answer KAFKA_STORAGE_ERROR; the
batch whose flush failed is never acknowledged, since acks=all waits for it. (A Kafka broker
whose only log directory failed halts; shoal keeps running read-only, so that its fetches and
metadata still answer, and the operator restarts it: the documented difference.)

Here: a probe producer without retries must be told KAFKA_STORAGE_ERROR, for another
partition of the same directory too; then the disk is "fixed" and the broker restarts as after a
power loss that kept only fsynced bytes, so anything acknowledged without a successful fsync
would be gone and the checker would report it lost. Afterwards writes are acknowledged again.

Quick mode in ``make test``; ``make reliability`` sets ``SHOAL_RELIABILITY_FSYNC_ERRORS``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from typing import Any, Final

import pytest
from confluent_kafka import KafkaError, Producer

from tests.reliability.checker import check
from tests.reliability.history import Write, value_of
from tests.reliability.power_broker import DATA_DIR, PowerBroker
from tests.reliability.workload import Workload, WorkloadSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 * 4)]

FSYNC_ERRORS: Final = int(os.environ.get("SHOAL_RELIABILITY_FSYNC_ERRORS", "2"))
SERVICE_S: Final = 2.0
"""Normal service before each fault and after each restart."""
REFUSAL_TIMEOUT_S: Final = 20.0
TOPIC: Final = "fsync-eio"


@pytest.fixture
def power_broker() -> Iterator[PowerBroker]:
    broker = PowerBroker(seed=51).start()
    yield broker
    broker.stop()


def _probe_error(bootstrap: str, partition: int, sequence: int) -> int | None:
    """Produce one record without retries: the error code the broker answered, None if
    acknowledged."""
    outcome: list[KafkaError | None] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "retries": 0,
            "message.timeout.ms": 5_000,
            "log_level": 0,
        }
    )

    def on_delivery(error: KafkaError | None, _message: Any) -> None:
        outcome.append(error)

    producer.produce(
        TOPIC,
        value=value_of("probe", sequence).encode(),
        partition=partition,
        on_delivery=on_delivery,
    )
    producer.flush(10)
    assert outcome, "the probe got no outcome"
    error = outcome[0]
    return None if error is None else int(error.code())


def test_eio_on_fsync_is_never_acknowledged_and_fails_the_directory(
    power_broker: PowerBroker,
) -> None:
    workload = Workload(power_broker.bootstrap_servers, WorkloadSettings(topic=TOPIC))
    workload.create_topic()
    directory = os.path.join(DATA_DIR, f"{TOPIC}-0")
    assert power_broker.fs.exists(directory), power_broker.fs.listdir(DATA_DIR)
    probes = itertools.count()
    acked_after: list[int] = []
    refusals: list[int | None] = []
    workload.start()
    try:
        for _ in range(FSYNC_ERRORS):
            time.sleep(SERVICE_S)
            power_broker.fs.fail_fsyncs_under(directory)
            workload.history.fault(f"fsync EIO under {directory}")
            deadline = time.monotonic() + REFUSAL_TIMEOUT_S
            while time.monotonic() < deadline:
                code = _probe_error(power_broker.bootstrap_servers, 1, next(probes))
                if code is not None:
                    break
            refusals.append(code)
            power_broker.fs.heal_fsyncs()  # the disk is replaced; only fsynced bytes survive
            power_broker.power_loss(keep_unsynced=False)
            workload.history.fault("restarted")
            restarted_at = len(workload.history.events)
            time.sleep(SERVICE_S)
            acked_after.append(
                sum(
                    1
                    for e in workload.history.events[restarted_at:]
                    if isinstance(e, Write) and e.acked
                )
            )
    finally:
        workload.stop()
    report = check(workload.history, workload.read_back())
    print(f"{FSYNC_ERRORS} fsync failures: {report.summary()}; acked after: {acked_after}")
    assert refusals == [KafkaError.KAFKA_STORAGE_ERROR] * FSYNC_ERRORS, refusals
    assert report.valid, report.anomalies
    assert not workload.fatal_errors, workload.fatal_errors
    assert report.acknowledged > 0 and report.read_by_group > 0
    assert all(count > 0 for count in acked_after), acked_after
