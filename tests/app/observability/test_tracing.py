"""Spans and trace-context headers, seen through a small recording TracerProvider.

No OpenTelemetry SDK is installed (shoal depends on the API only), so the provider below
implements the API's abstract classes just far enough to record what shoal asks of it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)

from shoal.app.message import MESSAGE_ID_HEADER, Message
from shoal.app.observability import tracing


class RecordedSpan(Span):
    def __init__(
        self, name: str, kind: SpanKind, parent: SpanContext | None, attributes: Any
    ) -> None:
        self.name = name
        self.kind = kind
        self.parent = parent if parent is not None and parent.is_valid else None
        trace_id = self.parent.trace_id if self.parent else random.getrandbits(128)
        self.context = SpanContext(
            trace_id, random.getrandbits(64), False, TraceFlags(TraceFlags.SAMPLED)
        )
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.status = Status(StatusCode.UNSET)
        self.exceptions: list[BaseException] = []
        self.ended = False

    def end(self, end_time: int | None = None) -> None:
        self.ended = True

    def get_span_context(self) -> SpanContext:
        return self.context

    def set_attributes(self, attributes: Any) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        pass

    def update_name(self, name: str) -> None:
        self.name = name

    def is_recording(self) -> bool:
        return not self.ended

    def set_status(self, status: Any, description: str | None = None) -> None:
        self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        self.exceptions.append(exception)


class RecordingTracer(Tracer):
    def __init__(self, spans: list[RecordedSpan]) -> None:
        self.spans = spans

    def start_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> RecordedSpan:
        parent = trace.get_current_span(context).get_span_context()
        span = RecordedSpan(name, kind, parent, attributes)
        self.spans.append(span)
        return span

    @contextlib.contextmanager  # type: ignore[override]
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        *args: Any,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        **kwargs: Any,
    ) -> Iterator[Span]:
        span = self.start_span(name, context, kind, attributes)
        with trace.use_span(
            span,
            end_on_exit=True,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ):
            yield span


class RecordingProvider(TracerProvider):
    def __init__(self) -> None:
        self.spans: list[RecordedSpan] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return RecordingTracer(self.spans)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProvider]:
    # The API lets a process set its global provider once; replacing the module attribute (and
    # restoring it afterwards) keeps these tests from leaking a provider into other tests.
    recording = RecordingProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", recording)
    tracing.refresh()
    yield recording
    monkeypatch.undo()
    tracing.refresh()


def record(headers: list[tuple[str, bytes]] | None = None, key: bytes | None = b"k1") -> Message:
    return Message("orders", 2, 17, key, b"{}", headers or [], 0)


def test_without_an_sdk_nothing_is_added_or_recorded() -> None:
    tracing.refresh()
    assert not tracing.enabled()
    headers: list[tuple[str, bytes]] = []
    with tracing.publish_span("orders", headers=headers) as span:
        assert not span.is_recording()
    tracing.inject(headers)
    assert headers == []
    with tracing.consume_span(record(), "bill", "billing") as span:
        assert not span.is_recording()
    # An exception passes through untouched.
    with pytest.raises(KeyError), tracing.consume_span(record(), "bill", "billing"):
        raise KeyError("x")


def test_publish_then_consume_makes_a_parent_child_pair(provider: RecordingProvider) -> None:
    headers: list[tuple[str, bytes]] = [(MESSAGE_ID_HEADER, b"m-1")]
    with tracing.publish_span("orders"):
        tracing.inject(headers)
    (producer,) = provider.spans
    assert producer.name == "orders publish"
    assert producer.kind is SpanKind.PRODUCER
    assert producer.ended
    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.name"] == "orders"
    traceparent = dict(headers)["traceparent"].decode()
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, flags) == ("00", "01")
    assert int(trace_id, 16) == producer.context.trace_id
    assert int(span_id, 16) == producer.context.span_id

    with tracing.consume_span(record(headers), "bill", "billing") as current:
        # The span is current inside the block: what the handler publishes is its child.
        assert trace.get_current_span() is current
    consumer = provider.spans[1]
    assert consumer.name == "orders process"
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.ended
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.parent.trace_id == producer.context.trace_id
    assert consumer.attributes == {
        "messaging.system": "kafka",
        "messaging.destination.name": "orders",
        "messaging.destination.partition.id": "2",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": "billing",
        "messaging.message.id": "m-1",
        "messaging.kafka.offset": 17,
        "messaging.kafka.message.key": "k1",
        "shoal.subscriber": "bill",
    }
    assert consumer.status.status_code is StatusCode.UNSET


def test_a_failing_handler_marks_the_span(provider: RecordingProvider) -> None:
    with pytest.raises(ValueError), tracing.consume_span(record(), "bill", "billing"):
        raise ValueError("card declined")
    (span,) = provider.spans
    assert span.parent is None  # no traceparent header: a new trace
    assert span.status.status_code is StatusCode.ERROR
    assert "card declined" in (span.status.description or "")
    assert span.attributes["error.type"] == "builtins.ValueError"
    assert [type(e) for e in span.exceptions] == [ValueError]
    assert span.ended


def test_inject_replaces_a_stale_context(provider: RecordingProvider) -> None:
    # A redriven record arrives with the traceparent it was first sent with.
    stale = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    headers: list[tuple[str, bytes]] = [("traceparent", stale.encode()), ("app", b"x")]
    with tracing.publish_span("orders", headers=headers):
        pass
    names = [name for name, _ in headers]
    assert names.count("traceparent") == 1
    assert dict(headers)["traceparent"].decode() != stale
    assert ("app", b"x") in headers


def test_other_systems_omit_kafka_attributes(provider: RecordingProvider) -> None:
    with tracing.consume_span(record(key=None), "bill", "billing", system="rabbitmq"):
        pass
    (span,) = provider.spans
    assert span.attributes["messaging.system"] == "rabbitmq"
    assert not any(name.startswith("messaging.kafka.") for name in span.attributes)
    assert "messaging.message.id" not in span.attributes
