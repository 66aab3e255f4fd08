"""kcat (Debian's build, on its own librdkafka) against shoal: produce with keys and headers in
every codec, consume from the beginning, the last N, and a timestamp, with -f formats and -J,
and list metadata.

kcat is a required peer: scripts/peers/kcat.sh installs it and .ci/run calls that script. A
machine without it fails here rather than skipping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence

import pytest

from shoal.embedded import EmbeddedBroker
from tests.conformance.confluent import all_from, consume, produce
from tests.conformance.records import (
    TIMEOUT_S,
    Got,
    Sent,
    assert_same_records,
    assert_stored_with,
    by_partition,
)
from tests.conformance.support import TopicMaker

pytestmark = pytest.mark.integration

FORMAT = "%p\t%o\t%k\t%s\t%h\t%T\n"
"""Partition, offset, key, value, headers (k=v,k=v), timestamp: one record per line."""


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed: run scripts/peers/kcat.sh (apt-get install kcat)")
    return path


def run(args: Sequence[str], stdin: str | None = None) -> str:
    done = subprocess.run(
        list(args),
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}: {done.stderr}"
    assert "fail" not in done.stderr.lower(), done.stderr
    return done.stdout


def text_records(
    partition: int, count: int, tag: str, headers: tuple[tuple[str, bytes], ...]
) -> list[Sent]:
    """Records kcat can send line by line: no newline or key delimiter inside, UTF-8 text."""
    return [
        Sent(
            partition, f"{tag}-k{i}".encode(), f"{tag} värde {i} {'x' * (i % 50)}".encode(), headers
        )
        for i in range(count)
    ]


def kcat_produce(
    kcat: str, bootstrap: str, topic: str, records: Sequence[Sent], *options: str
) -> None:
    """One kcat -P per partition (-p), keys split at ':' (-K), the records' headers (-H)."""
    for partition, rs in sorted(by_partition(records).items()):
        headers = rs[0].headers
        assert all(r.headers == headers for r in rs), "kcat sends the same -H headers on all"
        header_args = [a for k, v in headers for a in ("-H", f"{k}={(v or b'').decode()}")]
        lines = "".join(f"{(r.key or b'').decode()}:{(r.value or b'').decode()}\n" for r in rs)
        run(
            [
                kcat,
                "-b",
                bootstrap,
                "-P",
                "-t",
                topic,
                "-p",
                str(partition),
                "-K",
                ":",
                *header_args,
                *options,
            ],
            stdin=lines,
        )


def parse_format(output: str) -> list[Got]:
    got = []
    for line in output.splitlines():
        partition, offset, key, value, headers, timestamp = line.split("\t")
        pairs = []
        for item in headers.split(",") if headers else []:
            name, _, header_value = item.partition("=")
            pairs.append((name, header_value.encode()))
        got.append(
            Got(
                int(partition),
                int(offset),
                key.encode(),
                value.encode(),
                tuple(pairs),
                int(timestamp),
            )
        )
    return got


def parse_json(output: str) -> list[Got]:
    got = []
    for line in output.splitlines():
        doc = json.loads(line)
        flat = doc.get("headers") or []
        headers = tuple((flat[i], flat[i + 1].encode()) for i in range(0, len(flat), 2))
        key = None if doc["key"] is None else doc["key"].encode()
        value = None if doc["payload"] is None else doc["payload"].encode()
        got.append(Got(doc["partition"], doc["offset"], key, value, headers, doc["ts"]))
    return got


CASES = {  # codec -> acks, so that every acks setting is used too
    "none": "1",
    "gzip": "all",
    "snappy": "0",
    "lz4": "all",
    "zstd": "1",
}


@pytest.mark.parametrize("codec", sorted(CASES))
def test_kcat_produce_and_consume(
    kcat: str, broker: EmbeddedBroker, new_topic: TopicMaker, codec: str
) -> None:
    partitions = 3
    topic = new_topic(partitions)
    records = [
        r
        for p in range(partitions)
        for r in text_records(
            p, 150 + 40 * p, f"p{p}", (("seq", f"{p}".encode()), ("empty", b""), ("seq", b"again"))
        )
    ]
    kcat_produce(
        kcat,
        broker.bootstrap_servers,
        topic,
        records,
        "-X",
        f"compression.codec={codec}",
        "-X",
        f"acks={CASES[codec]}",
    )
    # The broker stored what kcat's (older) librdkafka claims to have sent: it only compresses
    # when the broker advertises Produce from v0 (KAFKA-18659).
    assert_stored_with(broker.bootstrap_servers, topic, partitions, codec)

    out = run(
        [
            kcat,
            "-b",
            broker.bootstrap_servers,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            FORMAT,
        ]
    )
    assert_same_records(records, parse_format(out))
    # And an independent reader (librdkafka's newest, with exact header bytes) agrees.
    got = consume(broker.bootstrap_servers, topic, all_from(partitions), len(records))
    assert_same_records(records, got)


def test_kcat_consumes_the_last_n_of_each_partition(
    kcat: str, broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    partitions = 3
    topic = new_topic(partitions)
    records = [
        r for p in range(partitions) for r in text_records(p, 30 + 10 * p, f"n{p}", (("h", b"v"),))
    ]
    produce(broker.bootstrap_servers, topic, records, acks="all", **{"compression.type": "lz4"})
    out = run([kcat, "-b", broker.bootstrap_servers, "-C", "-t", topic, "-o", "-7", "-e", "-J"])
    per_partition = by_partition(records)
    last = [r for p in range(partitions) for r in per_partition[p][-7:]]
    starts = {p: len(per_partition[p]) - 7 for p in range(partitions)}
    assert_same_records(last, parse_json(out), start_offsets=starts)


def test_kcat_consumes_from_a_timestamp(
    kcat: str, broker: EmbeddedBroker, new_topic: TopicMaker
) -> None:
    topic = new_topic(1)
    base_ms = int(time.time() * 1000) - 600_000
    records = [
        Sent(0, f"t{i}".encode(), f"at {i}".encode(), (), base_ms + i * 1000) for i in range(60)
    ]
    produce(broker.bootstrap_servers, topic, records, acks="1", **{"batch.num.messages": 9})
    start = base_ms + 25 * 1000 - 1  # between records 24 and 25: starts at 25
    out = run(
        [
            kcat,
            "-b",
            broker.bootstrap_servers,
            "-C",
            "-t",
            topic,
            "-o",
            f"s@{start}",
            "-e",
            "-f",
            FORMAT,
        ]
    )
    assert_same_records(records[25:], parse_format(out), start_offsets={0: 25})


def test_kcat_lists_metadata(kcat: str, broker: EmbeddedBroker, new_topic: TopicMaker) -> None:
    topic = new_topic(5)
    doc = json.loads(run([kcat, "-b", broker.bootstrap_servers, "-L", "-J", "-t", topic]))
    assert doc["brokers"] == [{"id": 1, "name": broker.bootstrap_servers}]
    (described,) = doc["topics"]
    assert described["topic"] == topic
    assert [p["partition"] for p in described["partitions"]] == list(range(5))
    assert all(p["leader"] == 1 for p in described["partitions"])
    plain = run([kcat, "-b", broker.bootstrap_servers, "-L", "-t", topic])
    assert f'topic "{topic}" with 5 partitions:' in plain
