"""``shoal consume TOPIC``: print records as ``kcat -C`` does.

Without ``-g`` the partitions are assigned directly (no consumer group, nothing committed).
``-o`` takes kcat's forms: ``beginning`` (default), ``end``, ``N`` (absolute offset), ``-N``
(N records before the end, in each partition), ``@TIMESTAMP_MS`` (the first record at or after
that time). With ``-g GROUP`` the group's committed offsets win and ``-o`` may only be
``beginning`` or ``end``, for partitions the group has not committed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from shoal.cli.common import (
    ClientContext,
    CliError,
    UsageError,
    add_client_options,
    is_unknown_topic,
)
from shoal.cli.common import topic_partitions as read_partitions
from shoal.cli.formatting import DEFAULT_FORMAT, FormatError, compile_format, json_line

BATCH_MAX: Final = 1000
"""Records taken from librdkafka per call: amortises the call, bounds the output delay."""
POLL_S: Final = 0.5
"""How long one wait for records lasts; also how soon Ctrl-C is noticed."""
PLACEHOLDER_GROUP: Final = "shoal-cli"
"""librdkafka's consumer needs a group.id even when partitions are assigned directly; nothing
is joined or committed under it."""
EXIT_AT_END_SETTINGS: Final = {
    # The end of a partition is known only when a fetch comes back empty, and the broker holds
    # an empty fetch this long (default 500 ms). A one-shot dump (-e) should not wait that long.
    "fetch.wait.max.ms": 100,
}
_FATAL_CODES: Final = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    }
)

OffsetKind = Literal["beginning", "end", "absolute", "tail", "timestamp"]


@dataclass(frozen=True, slots=True)
class StartOffset:
    kind: OffsetKind
    value: int = 0


def parse_offset(text: str) -> StartOffset:
    """argparse type for ``-o``."""
    if text == "beginning":
        return StartOffset("beginning")
    if text == "end":
        return StartOffset("end")
    # "s@" is kcat's spelling of a start timestamp; "@" alone is the short form.
    for prefix in ("s@", "@"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return StartOffset("timestamp", int(text[len(prefix) :]))
    if text.startswith("-") and text[1:].isdigit():
        return StartOffset("tail", int(text[1:]))
    if text.isdigit():
        return StartOffset("absolute", int(text))
    raise argparse.ArgumentTypeError(
        f"expected beginning, end, N, -N or @TIMESTAMP_MS, got {text!r}"
    )


def add_consume_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    consume = sub.add_parser(
        "consume",
        help="print records of a topic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    consume.add_argument("topic")
    consume.add_argument(
        "-o",
        dest="offset",
        type=parse_offset,
        metavar="OFFSET",
        help="where to start: beginning (default), end, N, -N, @TIMESTAMP_MS",
    )
    consume.add_argument("-p", "--partition", type=int, help="only this partition")
    consume.add_argument("-c", "--count", type=int, help="exit after this many records")
    consume.add_argument(
        "-e", dest="exit_at_end", action="store_true", help="exit at the end of every partition"
    )
    consume.add_argument(
        "-f", dest="fmt", metavar="FORMAT", help=r"kcat format, e.g. '%%k:%%s\n' (default %%s\n)"
    )
    consume.add_argument(
        "--format", dest="output", choices=["text", "json"], default="text",
        help="json: one JSON object per record and line",
    )  # fmt: skip
    consume.add_argument("-g", "--group", help="consume as a member of this consumer group")
    consume.add_argument("-q", "--quiet", action="store_true", help="no closing count on stderr")
    add_client_options(consume)
    consume.set_defaults(run=run_consume, command_parser=consume)


def _check_flags(args: argparse.Namespace) -> None:
    if args.output == "json" and args.fmt is not None:
        raise UsageError("-f and --format json cannot be used together")
    if args.count is not None and args.count <= 0:
        raise UsageError("-c needs a positive count")
    if args.group is not None:
        if args.partition is not None:
            raise UsageError("-p cannot be used with -g: the group assigns partitions")
        if args.offset is not None and args.offset.kind not in ("beginning", "end"):
            raise UsageError("with -g, -o can only be beginning or end")


def run_consume(args: argparse.Namespace) -> int:
    _check_flags(args)
    try:
        render = json_line if args.output == "json" else compile_format(args.fmt or DEFAULT_FORMAT)
    except FormatError as exc:
        raise UsageError(f"-f: {exc}") from None
    ctx = ClientContext(args)
    topic: str = args.topic
    start: StartOffset = args.offset or StartOffset("beginning")
    consumer = Consumer(
        ctx.config(
            {
                "group.id": args.group or PLACEHOLDER_GROUP,
                "enable.auto.commit": args.group is not None,
                "auto.offset.reset": "latest" if start.kind == "end" else "earliest",
                "enable.partition.eof": True,
                **(EXIT_AT_END_SETTINGS if args.exit_at_end else {}),
            }
        )
    )
    progress = _Progress()
    try:
        # Ctrl-C, `kill` and `timeout` stop a tailing consumer: finish the batch in hand, close
        # the consumer properly (leave the group, commit) and print the count.
        with _StopOnSignals() as stop:
            partitions = read_partitions(ctx, consumer, topic)
            if args.group is not None:
                consumer.subscribe([topic])
            else:
                assignment = _assignment(ctx, consumer, topic, partitions, args.partition, start)
                consumer.assign(assignment)
            _consume_loop(ctx, consumer, render, args, progress, stop)
    except KeyboardInterrupt:
        pass  # a second signal: the user insists; still close the consumer
    finally:
        consumer.close()
    if not args.quiet:
        print(f"Processed a total of {progress.count} messages", file=sys.stderr)
    return 0


@dataclass(slots=True)
class _Progress:
    count: int = 0
    """Records printed so far; kept outside the loop so that an interruption does not lose it."""


_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class _StopOnSignals:
    """The first SIGINT or SIGTERM sets :attr:`requested`, which the loop checks between
    batches; raising in the middle of a write would print a record and not count it. A second
    signal raises KeyboardInterrupt, for a consumer stuck somewhere else. Off the main thread
    (``main`` called from an application's thread) Python cannot handle signals: a no-op."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            # None: a handler not installed from Python, which cannot be put back.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _assignment(
    ctx: ClientContext,
    consumer: Consumer,
    topic: str,
    partitions: list[int],
    only: int | None,
    start: StartOffset,
) -> list[TopicPartition]:
    if only is not None:
        if only not in partitions:
            raise CliError(
                f"topic {topic!r} has partitions 0-{len(partitions) - 1}; "
                f"there is no partition {only}"
            )
        partitions = [only]
    if start.kind == "beginning":
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    if start.kind == "end":
        return [TopicPartition(topic, p, OFFSET_END) for p in partitions]
    if start.kind == "absolute":
        return [TopicPartition(topic, p, start.value) for p in partitions]
    if start.kind == "tail":
        return [_tail(ctx, consumer, topic, p, start.value) for p in partitions]
    return _by_timestamp(ctx, consumer, topic, partitions, start.value)


def _tail(ctx: ClientContext, consumer: Consumer, topic: str, p: int, n: int) -> TopicPartition:
    # Resolved here rather than with librdkafka's logical OFFSET_TAIL so that the start is
    # clamped to the log start and the same rule holds for every partition.
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.error(exc, f"read the offsets of {topic} [{p}]", consumer) from None
    return TopicPartition(topic, p, max(low, high - n))


def _by_timestamp(
    ctx: ClientContext, consumer: Consumer, topic: str, partitions: list[int], ts_ms: int
) -> list[TopicPartition]:
    query = [TopicPartition(topic, p, ts_ms) for p in partitions]
    try:
        found = consumer.offsets_for_times(query, timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.error(exc, f"look up offsets by time in topic {topic!r}", consumer) from None
    result = []
    for tp in found:
        if tp.error is not None:
            raise ctx.kafka_error(tp.error, f"look up offsets by time in {topic} [{tp.partition}]")
        # -1: no record at or after that time, so start at the end and wait for new ones.
        result.append(
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
        )
    return result


def _consume_loop(
    ctx: ClientContext,
    consumer: Consumer,
    render: Callable[[Message], bytes],
    args: argparse.Namespace,
    progress: _Progress,
    stop: _StopOnSignals,
) -> None:
    out = sys.stdout.buffer
    count_max: int | None = args.count
    group: str | None = args.group
    at_end: set[tuple[str | None, int | None]] = set()
    unassigned_since = time.monotonic() if group is not None else None
    while not stop.requested:
        want = BATCH_MAX if count_max is None else min(BATCH_MAX, count_max - progress.count)
        # consume() waits for its whole timeout unless the batch fills, which would delay
        # every record of a slow topic; so take what is queued now, and when nothing is, wait
        # for the next one with poll(), which returns as soon as it arrives.
        messages: list[Message] = consumer.consume(num_messages=want, timeout=0)
        if not messages:
            waited = consumer.poll(POLL_S)
            messages = [waited] if waited is not None else []
        for message in messages:
            error = message.error()
            if error is None:
                out.write(render(message))
                progress.count += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                at_end.add((message.topic(), message.partition()))
            else:
                _on_error(ctx, error, message.topic())
        out.flush()
        if count_max is not None and progress.count >= count_max:
            return
        if args.exit_at_end and _all_at_end(consumer, at_end):
            return
        if unassigned_since is not None:
            if consumer.assignment():
                unassigned_since = None
            elif time.monotonic() - unassigned_since > ctx.timeout_s:
                # Not an error: a group with more members than partitions leaves some idle.
                # But a broker without a group coordinator looks the same, so say so once.
                print(
                    f"shoal consume: no partitions assigned to group {group!r} after "
                    f"{ctx.timeout_s:g} s; still waiting (does the broker serve consumer groups?)",
                    file=sys.stderr,
                )
                unassigned_since = None


def _all_at_end(consumer: Consumer, at_end: set[tuple[str | None, int | None]]) -> bool:
    assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    return bool(assigned) and assigned <= at_end


def _on_error(ctx: ClientContext, error: KafkaError, topic: str | None) -> None:
    if is_unknown_topic(error):
        raise CliError(f"topic {topic!r} does not exist (any more)")
    if error.fatal() or error.code() in _FATAL_CODES:
        raise ctx.kafka_error(error, "consume")
    # Transient (a broker restarting, a leader moving): librdkafka retries; say so and go on.
    print(f"shoal consume: {error.str()}", file=sys.stderr)
