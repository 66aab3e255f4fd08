"""OpenTelemetry spans for consuming and publishing, with the trace context carried in headers.

Only the OpenTelemetry *API* is used: the application picks an SDK and exporter (or none). The
spans follow the messaging semantic conventions: a CONSUMER span ``"<topic> process"`` per
record, child of the span that published it (its ``traceparent`` header), and a PRODUCER span
``"<topic> publish"`` per send, whose context the sent record carries.

Without an SDK every call here returns at once. The framework aims at 100k records a second,
and even the API's no-op path (parse the header, build a non-recording span, swap the current
context) costs microseconds a record. The price of that shortcut: a service without an SDK
does not forward the trace context of what it consumes into what it publishes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import (
    INVALID_SPAN,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)
from opentelemetry.util.types import AttributeValue

from shoal.app.message import Headers, Message

INSTRUMENTATION_NAME: Final = "shoal.app"
DEFAULT_SYSTEM: Final = "kafka"

# Semantic-convention attribute names (messaging, v1.27+), spelled once.
SYSTEM: Final = "messaging.system"
DESTINATION: Final = "messaging.destination.name"
PARTITION: Final = "messaging.destination.partition.id"
OPERATION_TYPE: Final = "messaging.operation.type"
OPERATION_NAME: Final = "messaging.operation.name"
CONSUMER_GROUP: Final = "messaging.consumer.group.name"
MESSAGE_ID: Final = "messaging.message.id"
KAFKA_KEY: Final = "messaging.kafka.message.key"
KAFKA_OFFSET: Final = "messaging.kafka.offset"
ERROR_TYPE: Final = "error.type"
SUBSCRIBER: Final = "shoal.subscriber"
"""Not a semantic convention: which handler of the app processed the record."""

# A provider of one of these types means "no SDK": nothing would be recorded.
_DISABLED: Final = (ProxyTracerProvider, NoOpTracerProvider)


class _HeaderGetter(Getter[Headers]):
    # Header values are bytes on the wire; trace headers are ASCII, and latin-1 never fails.
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [value.decode("latin-1") for name, value in carrier if name == key]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _ in carrier]


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        # A record republished as it was (a redrive, a forward) already carries the context it
        # was consumed with; it must now carry this one, and only this one.
        carrier[:] = [h for h in carrier if h[0] != key]
        carrier.append((key, value.encode("latin-1")))


_GETTER: Final = _HeaderGetter()
_SETTER: Final = _HeaderSetter()


class _TracerCache:
    """The tracer of the global provider, looked up once rather than per record: the lookup
    reads os.environ, about a microsecond, several times per record at 100k records/s."""

    stale: bool = True
    tracer: Tracer | None = None


def refresh() -> None:
    """Look the global TracerProvider up again on next use. App.start calls this, so an SDK
    installed any time before the app starts is used. (The API lets a process set its provider
    only once, so a real provider, once seen, never changes.)"""
    _TracerCache.stale = True


def _tracer() -> Tracer | None:
    """The tracer to use, or None when no SDK is installed."""
    if _TracerCache.stale:
        provider = trace.get_tracer_provider()
        disabled = isinstance(provider, _DISABLED)
        _TracerCache.tracer = None if disabled else provider.get_tracer(INSTRUMENTATION_NAME)
        _TracerCache.stale = False
    return _TracerCache.tracer


def enabled() -> bool:
    """True when an SDK is installed, i.e. when spans would be recorded at all."""
    return _tracer() is not None


def inject(headers: Headers) -> None:
    """Add the current trace context (W3C ``traceparent``, ``tracestate`` when there is one,
    or whatever the configured propagators write) to ``headers``, replacing any it had."""
    if _tracer() is None:
        return
    propagate.inject(headers, setter=_SETTER)


def extract(headers: Headers) -> Context:
    """The trace context carried by ``headers`` (empty if none)."""
    return propagate.extract(headers, getter=_GETTER)


def _key_text(key: bytes) -> str:
    # The convention wants the key as a string; binary keys keep their bytes visible as escapes.
    return key.decode("utf-8", "backslashreplace")


def _consume_attributes(
    msg: Message, subscriber: str, group: str, system: str
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        SYSTEM: system,
        DESTINATION: msg.topic,
        PARTITION: str(msg.partition),
        OPERATION_TYPE: "process",
        OPERATION_NAME: "process",
        CONSUMER_GROUP: group,
        SUBSCRIBER: subscriber,
    }
    message_id = msg.message_id
    if message_id is not None:
        attributes[MESSAGE_ID] = message_id
    if system == "kafka":
        # On work-queue transports the offset is a per-consumer delivery number and the key
        # has no Kafka meaning, so these attributes are Kafka's only.
        attributes[KAFKA_OFFSET] = msg.offset
        if msg.key is not None:
            attributes[KAFKA_KEY] = _key_text(msg.key)
    return attributes


def _record_failure(span: Span, exc: Exception) -> None:
    kind = type(exc)
    span.record_exception(exc)
    span.set_attribute(ERROR_TYPE, f"{kind.__module__}.{kind.__qualname__}")
    span.set_status(Status(StatusCode.ERROR, f"{kind.__qualname__}: {exc}"))


@contextmanager
def _span(
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, AttributeValue],
    parent: Context | None,
    inject_into: Headers | None = None,
) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        # Done by hand below, to add the convention's error.type as well.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        if inject_into is not None:
            inject(inject_into)
        try:
            yield span
        except Exception as exc:
            # Only Exception: a cancelled task or Ctrl-C is a stop, not a failed record.
            _record_failure(span, exc)
            raise


class _NoSpan(AbstractContextManager[Span]):
    """What the span functions return without an SDK: one shared, stateless object, because
    even creating a @contextmanager generator per record costs a microsecond or two."""

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN: Final = _NoSpan()


def consume_span(
    msg: Message, subscriber: str, group: str, *, system: str = DEFAULT_SYSTEM
) -> AbstractContextManager[Span]:
    """A CONSUMER span ``"<topic> process"`` around handling ``msg``, child of the context in
    its headers; an exception leaving the block is recorded and marks the span as an error."""
    tracer = _tracer()
    if tracer is None:
        return _NO_SPAN
    return _span(
        tracer,
        f"{msg.topic} process",
        SpanKind.CONSUMER,
        _consume_attributes(msg, subscriber, group, system),
        extract(msg.headers),
    )


def publish_span(
    topic: str, system: str = DEFAULT_SYSTEM, *, headers: Headers | None = None
) -> AbstractContextManager[Span]:
    """A PRODUCER span ``"<topic> publish"`` around a send. Call :func:`inject` inside it (or
    pass ``headers`` to have it done on entry) so the record carries this span's context."""
    tracer = _tracer()
    if tracer is None:
        return _NO_SPAN
    attributes: dict[str, AttributeValue] = {
        SYSTEM: system,
        DESTINATION: topic,
        OPERATION_TYPE: "send",
        OPERATION_NAME: "publish",
    }
    return _span(tracer, f"{topic} publish", SpanKind.PRODUCER, attributes, None, headers)
