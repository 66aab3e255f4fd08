"""Where shoal topics live in RabbitMQ, the URL options that shape them, and their declaration.

For a topic ``T`` and a subscriber group ``G``:

    publisher --> exchange T (durable; topic by default) --+--> stream shoal.journal.T  (everything)
                                                           +--> queue T.G (quorum, bound "#")
    queue T.G --x-dead-letter-exchange--> exchange T.dlq --> stream shoal.journal.T.dlq, ...
    send_delayed --> exchange shoal.delay (headers) --> queue shoal.delay.T.<ms>
                     (x-message-ttl=<ms>) --x-dead-letter-exchange--> exchange T

The journal stream is what ``read_topic`` reads: RabbitMQ queues forget what they delivered, a
stream keeps every record with an offset. A direct exchange routes exact keys only, so records
published to one carry ``CC: shoal.journal``, the key its journal is bound with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aio_pika.abc import AbstractChannel

from shoal.app.resilience.dlq import DLQ_SUFFIX, dlq_topic
from shoal.app.resilience.retry import RETRY_TOPIC_INFIX

EXCHANGE_TYPES = ("topic", "direct", "fanout", "headers")
QUEUE_TYPES = ("quorum", "classic")
DELIVERY_LIMIT_DEFAULT = 20
"""A backstop against a record that crashes every consumer it reaches (the App retries in
process, so a healthy record is returned only by crashes and restarts). In RabbitMQ 3.10 every
return counts, including prefetched records of a consumer that closes, hence the headroom."""
PREFETCH_MAX = 1000
"""Unacknowledged deliveries per consumer channel: bounds a consumer's memory and what a
crashed consumer hands back to the queue."""
DELAY_MS_MAX = 2**32 - 1
"""x-message-ttl is an unsigned 32-bit number of milliseconds (about 49 days)."""
NAME_BYTES_MAX = 255
"""Exchange and queue names are AMQP short strings."""

JOURNAL_PREFIX = "shoal.journal."
JOURNAL_KEY = "shoal.journal"
DELAY_EXCHANGE = "shoal.delay"
DELAY_QUEUE_PREFIX = "shoal.delay."
DELAY_QUEUE_HEADER = "shoal.delay-queue"
PATTERN_SEPARATOR = ":"
_DERIVED_SUFFIX = re.compile(
    rf".*?((?:{re.escape(RETRY_TOPIC_INFIX)}\d+|{re.escape(DLQ_SUFFIX)})+)"
)


@dataclass(frozen=True, slots=True)
class AmqpOptions:
    """The shoal options of an ``amqp://`` URL's query; see docs/transports.md."""

    queue_type: str = "quorum"
    exchange_type: str = "topic"
    exchange_types: Mapping[str, str] = field(default_factory=dict)
    delivery_limit: int = DELIVERY_LIMIT_DEFAULT
    message_ttl_ms: int | None = None
    max_priority: int | None = None
    prefetch: int | None = None

    def exchange_type_for(self, topic: str) -> str:
        return self.exchange_types.get(topic, self.exchange_type)


def _int_option(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"amqp URL option {name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ValueError(f"amqp URL option {name} must be in {low}..{high}, not {value}")
    return value


def _exchange_type(name: str, raw: str) -> str:
    if raw not in EXCHANGE_TYPES:
        raise ValueError(f"amqp URL option {name}={raw!r}: use one of {', '.join(EXCHANGE_TYPES)}")
    return raw


def split_url(url: str) -> tuple[str, AmqpOptions]:
    """The URL for the client (shoal's options removed, others such as heartbeat kept) and the
    shoal options it carried."""
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    found: dict[str, Any] = {}
    per_topic: dict[str, str] = {}
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        if name == "queue_type":
            if raw not in QUEUE_TYPES:
                raise ValueError(f"amqp URL option queue_type={raw!r}: use quorum or classic")
            found[name] = raw
        elif name == "exchange_type":
            found[name] = _exchange_type(name, raw)
        elif name.startswith("exchange."):
            per_topic[name.removeprefix("exchange.")] = _exchange_type(name, raw)
        elif name == "delivery_limit":
            found[name] = _int_option(name, raw, 0, 2**31 - 1)
        elif name == "message_ttl_ms":
            found[name] = _int_option(name, raw, 0, DELAY_MS_MAX)
        elif name == "max_priority":
            found[name] = _int_option(name, raw, 1, 255)
        elif name == "prefetch":
            found[name] = _int_option(name, raw, 1, PREFETCH_MAX)
        else:
            kept.append((name, raw))
    options = AmqpOptions(exchange_types=per_topic, **found)
    if options.max_priority is not None and options.queue_type != "classic":
        raise ValueError("max_priority needs queue_type=classic: quorum queues have no priorities")
    return urlunsplit(parts._replace(query=urlencode(kept))), options


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscribed topic and the binding patterns that select its records.

    Written ``"orders"`` (every record) or ``"orders:eu.*,us.#"``: the patterns follow a colon,
    comma-separated, each a binding of its own (a record matching any of them is delivered).
    On a headers exchange a pattern is ``name=value[&name=value]`` (all must match). A last
    pattern may not end in ``.dlq`` or ``.retry.<n>``: those are the names the App derives.
    """

    topic: str
    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str) -> Subscription:
        topic, _, rest = spec.partition(PATTERN_SEPARATOR)
        derived = _DERIVED_SUFFIX.fullmatch(rest)
        if derived is not None:
            # The App names retry and DLQ topics by appending to the subscribed spec
            # ("orders:eu.*" -> "orders:eu.*.retry.1"); those topics hold only records that
            # already matched, so they are plain topics of their own, read whole.
            check_topic(topic + derived.group(1))
            return cls(topic + derived.group(1), ())
        check_topic(topic)
        patterns = tuple(p for p in rest.split(",") if p) if rest else ()
        return cls(topic, patterns)


def check_topic(topic: str) -> None:
    if not topic:
        raise ValueError("a topic name is empty")
    if PATTERN_SEPARATOR in topic:
        raise ValueError(f"topic {topic!r}: binding patterns are for subscriptions only")
    if topic.startswith("amq."):
        raise ValueError(f"topic {topic!r}: RabbitMQ reserves names starting with amq.")
    if len(journal_name(topic).encode()) > NAME_BYTES_MAX:
        raise ValueError(f"topic {topic!r} is too long for RabbitMQ queue names")


def journal_name(topic: str) -> str:
    return JOURNAL_PREFIX + topic


def group_queue_name(topic: str, group: str) -> str:
    return f"{topic}.{group}"


def delay_queue_name(topic: str, delay_ms: int) -> str:
    return f"{DELAY_QUEUE_PREFIX}{topic}.{delay_ms}"


def _dead_letter_arguments(options: AmqpOptions, target: str) -> dict[str, Any]:
    args: dict[str, Any] = {"x-queue-type": options.queue_type, "x-dead-letter-exchange": target}
    if options.queue_type == "quorum":
        # At-least-once dead-lettering (RabbitMQ >= 3.10) keeps a message in the source queue
        # until the target confirms it; the broker requires reject-publish overflow for it.
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    return args


def group_queue_arguments(options: AmqpOptions, topic: str) -> dict[str, Any]:
    args = _dead_letter_arguments(options, dlq_topic(topic))
    if options.queue_type == "quorum" and options.delivery_limit > 0:
        args["x-delivery-limit"] = options.delivery_limit
    if options.message_ttl_ms is not None:
        args["x-message-ttl"] = options.message_ttl_ms
    if options.max_priority is not None:
        args["x-max-priority"] = options.max_priority
    return args


def delay_queue_arguments(options: AmqpOptions, topic: str, delay_ms: int) -> dict[str, Any]:
    # No consumer ever reads a delay queue: records leave it only by expiring, at their turn,
    # and since every record of the queue has the same TTL, their turn is their due time.
    return {**_dead_letter_arguments(options, topic), "x-message-ttl": delay_ms}


def bindings(exchange_type: str, sub: Subscription) -> list[tuple[str, dict[str, Any] | None]]:
    """(binding key, binding arguments) for each binding a subscription's queue needs."""
    if exchange_type == "fanout":
        return [("", None)]
    if exchange_type == "headers":
        out: list[tuple[str, dict[str, Any] | None]] = []
        for pattern in sub.patterns or ("",):
            args: dict[str, Any] = {"x-match": "all"}
            for pair in filter(None, pattern.split("&")):
                name, sep, value = pair.partition("=")
                if not sep:
                    raise ValueError(f"headers binding {pattern!r}: write name=value[&name=value]")
                args[name] = value
            out.append(("", args))
        return out
    if exchange_type == "direct" and not sub.patterns:
        raise ValueError(
            f"{sub.topic} is a direct exchange: subscribe to '{sub.topic}:KEY[,KEY]' to say "
            "which routing keys to receive"
        )
    return [(p, None) for p in sub.patterns or ("#",)]


def journal_binding(exchange_type: str) -> tuple[str, dict[str, Any] | None]:
    """The binding that routes every record of an exchange of this type to its journal."""
    if exchange_type == "headers":
        return "", {"x-match": "all"}  # no header conditions: all of none always holds
    if exchange_type == "direct":
        return JOURNAL_KEY, None
    return "#", None  # topic; ignored by fanout


async def declare_topic(channel: AbstractChannel, options: AmqpOptions, topic: str) -> None:
    """The topic's exchange and its journal stream; idempotent."""
    check_topic(topic)
    kind = options.exchange_type_for(topic)
    await channel.declare_exchange(topic, kind, durable=True)
    journal = await channel.declare_queue(
        journal_name(topic), durable=True, arguments={"x-queue-type": "stream"}
    )
    key, args = journal_binding(kind)
    await journal.bind(topic, routing_key=key, arguments=args)


async def declare_group_queue(
    channel: AbstractChannel, options: AmqpOptions, sub: Subscription, group: str
) -> str:
    """The group's queue for ``sub`` with its bindings (and the topic and the topic's DLQ it
    needs); returns the queue name."""
    kind = options.exchange_type_for(sub.topic)
    links = bindings(kind, sub)  # a ValueError here leaves nothing half-declared
    await declare_topic(channel, options, sub.topic)
    # The dead-letter exchange exists before any message can be dead-lettered to it.
    await declare_topic(channel, options, dlq_topic(sub.topic))
    name = group_queue_name(sub.topic, group)
    queue = await channel.declare_queue(
        name, durable=True, arguments=group_queue_arguments(options, sub.topic)
    )
    for key, args in links:
        await queue.bind(sub.topic, routing_key=key, arguments=args)
    return name


async def declare_delay_queue(
    channel: AbstractChannel, options: AmqpOptions, topic: str, delay_ms: int
) -> str:
    if not 1 <= delay_ms <= DELAY_MS_MAX:
        raise ValueError(f"delay_ms must be in 1..{DELAY_MS_MAX}, not {delay_ms}")
    name = delay_queue_name(topic, delay_ms)
    if len(name.encode()) > NAME_BYTES_MAX:
        raise ValueError(f"topic {topic!r} is too long for a delay queue name ({name})")
    await declare_topic(channel, options, topic)
    await channel.declare_exchange(DELAY_EXCHANGE, "headers", durable=True)
    queue = await channel.declare_queue(
        name, durable=True, arguments=delay_queue_arguments(options, topic, delay_ms)
    )
    await queue.bind(
        DELAY_EXCHANGE, routing_key="", arguments={"x-match": "all", DELAY_QUEUE_HEADER: name}
    )
    return name
