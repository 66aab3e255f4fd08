"""``shoal produce TOPIC``: one record per line of standard input, as ``kcat -P`` does.

``-K SEP`` splits each line at the first SEP into key and value (a line without SEP has no key);
``-H key=value`` adds headers to every record; ``-Z`` sends empty keys and values as null (so an
empty value is a tombstone on a compacted topic).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shoal.cli.common import ClientContext, CliError, UsageError, add_client_options, key_value
from shoal.cli.common import topic_partitions as read_partitions

if TYPE_CHECKING:
    from confluent_kafka._types import HeadersType

ACKS_CHOICES = ("all", "-1", "0", "1")
COMPRESSION_CHOICES = ("none", "gzip", "snappy", "lz4", "zstd")
PRODUCER_SETTINGS = {
    # Lines arrive faster than round trips; a few ms of lingering turns them into batches.
    "linger.ms": 5,
}
UNASSIGNED_PARTITION = -1
"""librdkafka's RD_KAFKA_PARTITION_UA: the configured partitioner chooses (by key, or sticky)."""
QUEUE_FULL_WAIT_S = 0.1
"""When librdkafka's local queue is full, serve delivery reports this long and try again."""


def add_produce_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    produce = sub.add_parser(
        "produce",
        help="produce lines of standard input as records",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    produce.add_argument("topic")
    produce.add_argument("-K", dest="key_separator", metavar="SEP", help="key separator")
    produce.add_argument(
        "-H",
        dest="headers",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="a header on every record (repeatable)",
    )
    produce.add_argument(
        "-p", "--partition", type=int, help="partition (default: the key's, or spread)"
    )
    produce.add_argument("--acks", choices=ACKS_CHOICES, default="all", help="default all")
    produce.add_argument(
        "--compression", choices=COMPRESSION_CHOICES, default="none", help="default none"
    )
    produce.add_argument("-Z", dest="empty_as_null", action="store_true", help="empty is null")
    produce.add_argument("-q", "--quiet", action="store_true", help="no summary")
    add_client_options(produce)
    produce.set_defaults(run=run_produce, command_parser=produce)


@dataclass
class DeliveryTally:
    """What the delivery reports said, per partition, for the summary."""

    delivered: int = 0
    failed: int = 0
    first_error: KafkaError | None = None
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = error
            return
        self.delivered += 1
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None:
            return
        low, high = self.offsets.get(partition, (offset, offset))
        self.offsets[partition] = (min(low, offset), max(high, offset))


def read_records(
    stream: BinaryIO, key_separator: bytes | None, empty_as_null: bool
) -> Iterator[tuple[bytes | None, bytes | None]]:
    for raw in stream:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        key: bytes | None = None
        value: bytes | None = line
        if key_separator is not None:
            before, sep, after = line.partition(key_separator)
            if sep:
                key, value = before, after
        if empty_as_null:
            key = key or None
            value = value or None
        yield key, value


def run_produce(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    topic: str = args.topic
    if args.key_separator == "":
        raise UsageError("-K needs a non-empty separator")
    separator = args.key_separator.encode() if args.key_separator is not None else None
    headers: HeadersType = [(k, v.encode()) for k, v in args.headers]
    producer = Producer(
        ctx.config(
            {
                **PRODUCER_SETTINGS,
                "acks": args.acks,
                "compression.type": args.compression,
                # Undeliverable records fail after this long instead of librdkafka's 5 minutes.
                "message.timeout.ms": int(ctx.timeout_s * 1000),
            }
        )
    )
    # Asking for the topic's metadata creates it where the broker auto-creates topics, as the
    # first record would; elsewhere it fails now, with a clear message, not after a timeout.
    partitions = read_partitions(ctx, producer, topic, action=f"produce to topic {topic!r}")
    if args.partition is not None and args.partition not in partitions:
        raise CliError(
            f"topic {topic!r} has partitions 0-{len(partitions) - 1}; "
            f"there is no partition {args.partition}"
        )
    tally = DeliveryTally()
    started = time.monotonic()
    total_bytes = 0
    for key, value in read_records(sys.stdin.buffer, separator, args.empty_as_null):
        total_bytes += len(value or b"") + len(key or b"")
        _produce_one(producer, topic, args.partition, key, value, headers, tally)
    remaining = producer.flush(ctx.timeout_s + 1)
    elapsed_s = time.monotonic() - started
    if not args.quiet:
        print(_summary(topic, tally, total_bytes, elapsed_s))
    if remaining or tally.failed:
        undelivered = tally.failed + remaining
        reason = tally.first_error.str() if tally.first_error else "no answer from the broker"
        raise CliError(
            f"{undelivered} of {tally.delivered + undelivered} records were not delivered "
            f"to topic {topic!r}: {reason}"
        )
    return 0


def _produce_one(
    producer: Producer,
    topic: str,
    partition: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: HeadersType,
    tally: DeliveryTally,
) -> None:
    while True:
        try:
            producer.produce(
                topic,
                value,
                key,
                partition=UNASSIGNED_PARTITION if partition is None else partition,
                headers=headers,
                on_delivery=tally.on_delivery,
            )
        except BufferError:
            producer.poll(QUEUE_FULL_WAIT_S)  # the local queue is full: let it drain
            continue
        except KafkaException as exc:
            raise CliError(f"cannot produce to topic {topic!r}: {exc.args[0]}") from None
        producer.poll(0)
        return


def _summary(topic: str, tally: DeliveryTally, total_bytes: int, elapsed_s: float) -> str:
    ranges = ", ".join(
        f"partition {p} offsets {low}-{high}" for p, (low, high) in sorted(tally.offsets.items())
    )
    where = f": {ranges}" if ranges else ""
    return (
        f"Produced {tally.delivered} records ({total_bytes} bytes) to topic {topic} "
        f"in {elapsed_s:.2f} s{where}"
    )
