"""What every client command shares: connection flags, client configuration, error translation.

The client commands talk to a broker through confluent-kafka (librdkafka), as any application
would, so they work against shoal and against a Kafka cluster alike.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Final, Protocol
from urllib.parse import urlencode

from confluent_kafka import KafkaError, KafkaException

from shoal.cli.client_properties import PropertiesError, read_properties, to_librdkafka
from shoal.cli.errors import CliError, UsageError

__all__ = ["CliError", "UsageError"]  # re-exported: every command imports them from here

BOOTSTRAP_ENV: Final = "SHOAL_BOOTSTRAP"
DEFAULT_BOOTSTRAP: Final = "127.0.0.1:9092"
DEFAULT_TIMEOUT_S: Final = 10.0
"""Long enough for a loaded broker to answer an admin request, short enough that a wrong
address is reported before the user gives up on the command."""

_UNREACHABLE_CODES: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
    }
)
_UNKNOWN_TOPIC_CODES: Final = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_ID}
)


class _Pollable(Protocol):
    def poll(self, timeout: float = -1) -> Any: ...


def key_value(text: str) -> tuple[str, str]:
    """argparse type for ``key=value`` flags (-c, -H, -X, --set)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """The connection flags of every command that talks to a broker."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "-b",
        "--bootstrap-server",
        metavar="HOST:PORT",
        default=os.environ.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP,
        help=f"broker address (default: ${BOOTSTRAP_ENV} or {DEFAULT_BOOTSTRAP})",
    )
    group.add_argument(
        "-X",
        dest="client_properties",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="a librdkafka client property, e.g. -X security.protocol=SASL_SSL (repeatable)",
    )
    group.add_argument(
        "--command-config",
        metavar="FILE",
        help="a Kafka tools client properties file (security.protocol, sasl.jaas.config, "
        "ssl.truststore.location, ...), as kafka-topics.sh --command-config takes; -X wins",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help=f"give up on an unresponsive broker after this long (default {DEFAULT_TIMEOUT_S:g})",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", help="show the Kafka client's own log lines"
    )


class ClientContext:
    """Builds client configurations and turns client exceptions into one-line messages."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.bootstrap: str = args.bootstrap_server
        self.timeout_s: float = args.timeout
        self._verbose: bool = args.verbose
        self._properties: list[tuple[str, str]] = command_config(args) + args.client_properties
        self._connection_error: KafkaError | None = None

    def config(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            # librdkafka prints every failed connection attempt to stderr; a command line tool
            # reports the failure once, in its own words, unless asked for the details (-v).
            "log_level": 6 if self._verbose else 0,
            "error_cb": self._on_error,
        }
        config.update(settings or {})
        config.update(self._properties)  # the user's -X wins over the command's choices
        return config

    def app_url(self) -> str:
        """The framework's broker URL for these settings: ``-X`` properties travel as its
        query parameters (``kafka://host:port?security.protocol=SASL_SSL``)."""
        query = urlencode(self._properties)
        return f"kafka://{self.bootstrap}" + (f"?{query}" if query else "")

    def _on_error(self, error: KafkaError) -> None:
        # The first error says why (connection refused, name not resolved); later ones only
        # say that all brokers are down.
        if self._connection_error is None or (
            self._connection_error.code() == KafkaError._ALL_BROKERS_DOWN
            and error.code() != KafkaError._ALL_BROKERS_DOWN
        ):
            self._connection_error = error

    def unreachable(self, code: int, client: _Pollable | None = None) -> CliError:
        if client is not None:
            client.poll(0)  # error callbacks are delivered only from poll
        known = self._connection_error
        if known is not None and known.code() != KafkaError._ALL_BROKERS_DOWN:
            reason = known.str()
        else:
            # librdkafka reports a connection the broker closed only in its log, not as an
            # error; the log (-v) has the detail.
            reason = "the connection failed or was closed by the broker (-v shows the client log)"
        if code == KafkaError._TIMED_OUT:
            return CliError(
                f"no answer from a broker at {self.bootstrap} within {self.timeout_s:g} s: {reason}"
            )
        return CliError(f"cannot reach a broker at {self.bootstrap}: {reason}")

    def error(self, exc: KafkaException, action: str, client: _Pollable | None = None) -> CliError:
        """A message for a failed ``action`` (e.g. "create topic 'x'")."""
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError):
            return CliError(f"cannot {action}: {exc}")
        return self.kafka_error(error, action, client)

    def kafka_error(
        self, error: KafkaError, action: str, client: _Pollable | None = None
    ) -> CliError:
        code = error.code()
        if code in _UNREACHABLE_CODES:
            return self.unreachable(code, client)
        if code == KafkaError._UNSUPPORTED_FEATURE:
            return CliError(
                f"cannot {action}: the broker at {self.bootstrap} does not support this "
                f"operation ({error.str()})"
            )
        return CliError(f"cannot {action}: {error.str()}")


def command_config(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The librdkafka settings of ``--command-config FILE`` (none without the flag)."""
    path = getattr(args, "command_config", None)
    if not path:
        return []
    try:
        return to_librdkafka(read_properties(path))
    except PropertiesError as exc:
        raise CliError(f"--command-config {path}: {exc}") from None


def is_unknown_topic(error: KafkaError | None) -> bool:
    return error is not None and error.code() in _UNKNOWN_TOPIC_CODES


def topic_partitions(
    ctx: ClientContext, client: Any, topic: str, *, action: str = "read topic metadata"
) -> list[int]:
    """The partition ids of ``topic``; a clear error when it or the broker is not there.

    ``client`` is a Producer, Consumer or AdminClient: all three answer ``list_topics``. Whether
    asking creates the topic depends on the client's ``allow.auto.create.topics``.
    """
    try:
        metadata = client.list_topics(topic, timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.error(exc, action, client) from None
    entry = metadata.topics.get(topic)
    if entry is None or is_unknown_topic(entry.error):
        raise CliError(f"topic {topic!r} does not exist")
    if entry.error is not None:
        raise ctx.kafka_error(entry.error, f"read metadata of topic {topic!r}", client)
    return sorted(entry.partitions)
