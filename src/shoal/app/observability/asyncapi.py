"""An AsyncAPI 3.0.0 document of an App: what it consumes, publishes, retries and dead-letters.

Everything comes from the App's registrations: a channel per topic (subscribed, output, retry,
dead-letter, publisher), a ``receive`` operation per subscribed topic (with its consumer group
as a Kafka binding), a ``send`` operation per output, publisher and dead-letter topic, and
payload schemas derived from the handlers' type annotations. Named types (pydantic models,
msgspec structs, dataclasses, enums) become reusable ``components.schemas``.

Broker URLs are reduced to host and path: credentials in a URL never reach the document.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import re
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from shoal.app.message import MESSAGE_ID_HEADER
from shoal.app.resilience import dlq as dlq_headers
from shoal.app.resilience.retry import Retry, retry_topic
from shoal.app.subscriber import Publisher, Subscriber

Schema = dict[str, Any]

ASYNCAPI_VERSION: Final = "3.0.0"
KAFKA_BINDING_VERSION: Final = "0.5.0"
SCHEMAS_REF: Final = "#/components/schemas/"
_ID_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_\-]")
"""AsyncAPI 3 keys of channels, operations, servers and components must match
``^[A-Za-z0-9_\\-]+$``; topic names and qualnames may hold dots and ``<locals>``."""

# Broker URL scheme -> AsyncAPI protocol name.
_PROTOCOLS: Final = {
    "kafka": "kafka",
    "embedded": "kafka",
    "amqp": "amqp",
    "amqps": "amqps",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "tls": "nats",
}

_SCALARS: Final[dict[Any, Schema]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    bytes: {"type": "string", "format": "binary"},
    bytearray: {"type": "string", "format": "binary"},
    type(None): {"type": "null"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
    dt.time: {"type": "string", "format": "time"},
    dt.timedelta: {"type": "string", "format": "duration"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    decimal.Decimal: {"type": "string", "format": "decimal"},
}

DLQ_HEADERS: Final = (
    dlq_headers.ORIGINAL_TOPIC,
    dlq_headers.ORIGINAL_PARTITION,
    dlq_headers.ORIGINAL_OFFSET,
    dlq_headers.ORIGINAL_KEY,
    dlq_headers.ORIGINAL_TIMESTAMP_MS,
    dlq_headers.EXCEPTION_TYPE,
    dlq_headers.EXCEPTION_MESSAGE,
    dlq_headers.EXCEPTION_TRACEBACK,
    dlq_headers.ATTEMPTS,
    dlq_headers.FIRST_FAILURE_MS,
    dlq_headers.LAST_FAILURE_MS,
)


def safe_id(text: str) -> str:
    return _ID_UNSAFE.sub("_", text) or "_"


class SchemaBuilder:
    """JSON Schemas of Python types; named types are stored once in ``components``."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}
        self._names: dict[Any, str] = {}

    def schema(self, tp: Any) -> Schema:
        if tp is Any or tp is object:
            return {}
        scalar = _SCALARS.get(tp) if isinstance(tp, typing.Hashable) else None
        if scalar is not None:
            return dict(scalar)
        origin = typing.get_origin(tp)
        if origin is not None:
            return self._generic(tp, origin)
        if isinstance(tp, type):
            return self._class(tp)
        if isinstance(tp, typing.TypeVar | typing.NewType):
            return self.schema(getattr(tp, "__supertype__", Any))
        return {}  # an annotation this builder does not understand: say nothing false

    def _generic(self, tp: Any, origin: Any) -> Schema:
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            return self.schema(args[0])
        if origin in (typing.Union, types.UnionType):
            return self._union(args)
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin is list or origin is Sequence or origin is set or origin is frozenset:
            items = self.schema(args[0]) if args else {}
            schema: Schema = {"type": "array", "items": items}
            if origin in (set, frozenset):
                schema["uniqueItems"] = True
            return schema
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            return {
                "type": "array",
                "prefixItems": [self.schema(a) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        if origin is dict or origin is Mapping:
            values = self.schema(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": values}
        return self.schema(origin)

    def _union(self, args: tuple[Any, ...]) -> Schema:
        members = [self.schema(a) for a in args]
        return {"anyOf": members}

    def _class(self, tp: type) -> Schema:
        if tp in self._names:
            return {"$ref": SCHEMAS_REF + self._names[tp]}
        if hasattr(tp, "model_json_schema"):
            return self._pydantic(tp)
        if hasattr(tp, "__struct_fields__"):
            return self._msgspec(tp)
        if dataclasses.is_dataclass(tp):
            return self._dataclass(tp)
        if issubclass(tp, enum.Enum):
            return self._enum(tp)
        if issubclass(tp, dict):
            return {"type": "object"}
        if issubclass(tp, list | tuple | set | frozenset):
            return {"type": "array"}
        for base, schema in _SCALARS.items():
            if isinstance(base, type) and base is not type(None) and issubclass(tp, base):
                return dict(schema)  # a str or int subclass (e.g. a StrEnum caught above)
        return {}

    def _name_for(self, tp: type) -> str:
        name = safe_id(tp.__name__)
        taken = set(self.components) | set(self._names.values())
        candidate, n = name, 2
        while candidate in taken:  # two classes of one name in different modules
            candidate, n = f"{name}{n}", n + 1
        self._names[tp] = candidate
        return candidate

    def _store(self, tp: type, build: typing.Callable[[], Schema]) -> Schema:
        # The name is reserved before the schema is built, so a recursive type refers to itself.
        name = self._name_for(tp)
        self.components[name] = {}
        self.components[name] = build()
        return {"$ref": SCHEMAS_REF + name}

    def _pydantic(self, tp: type) -> Schema:
        schema: Schema = tp.model_json_schema(  # type: ignore[attr-defined]
            ref_template=SCHEMAS_REF + "{model}"
        )
        for name, nested in schema.pop("$defs", {}).items():
            self.components.setdefault(name, nested)
        own = safe_id(tp.__name__)
        if own in self.components and own not in self._names.values():
            # Already there as a nested model of one met earlier (hoisted from its $defs).
            self._names[tp] = own
            return {"$ref": SCHEMAS_REF + own}
        return self._store(tp, lambda: schema)

    def _msgspec(self, tp: type) -> Schema:
        import msgspec  # only reached for a msgspec Struct, so msgspec is installed

        (schema,), nested = msgspec.json.schema_components(
            [tp], ref_template=SCHEMAS_REF + "{name}"
        )
        for name, definition in nested.items():
            self.components.setdefault(name, definition)
        if "$ref" in schema:
            self._names[tp] = str(schema["$ref"]).removeprefix(SCHEMAS_REF)
        return schema

    def _dataclass(self, tp: type) -> Schema:
        def build() -> Schema:
            try:
                hints = typing.get_type_hints(tp, include_extras=True)
            except (NameError, TypeError):
                hints = {}  # a forward reference that does not resolve: fields stay untyped
            properties: Schema = {}
            required: list[str] = []
            for field in dataclasses.fields(tp):
                properties[field.name] = self.schema(hints.get(field.name, Any))
                no_default = field.default is dataclasses.MISSING
                if no_default and field.default_factory is dataclasses.MISSING:
                    required.append(field.name)
            schema: Schema = {"title": tp.__name__, "type": "object", "properties": properties}
            if required:
                schema["required"] = required
            doc = _own_doc(tp)
            if doc:
                schema["description"] = doc
            return schema

        return self._store(tp, build)

    def _enum(self, tp: type[enum.Enum]) -> Schema:
        def build() -> Schema:
            values = [member.value for member in tp]
            schema: Schema = {"title": tp.__name__, "enum": values}
            if all(isinstance(v, str) for v in values):
                schema["type"] = "string"
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                schema["type"] = "integer"
            return schema

        return self._store(tp, build)


def _own_doc(tp: type) -> str | None:
    # dataclasses invent a docstring from the signature ("Order(id: str, ...)"): not a description.
    doc = tp.__dict__.get("__doc__")
    if not doc or doc.startswith(f"{tp.__name__}("):
        return None
    return str(doc).strip()


def content_type(tp: Any) -> str:
    """How shoal's serde writes a payload of type ``tp`` (see shoal.app.serdes.payload.encode)."""
    if tp in (bytes, bytearray):
        return "application/octet-stream"
    if tp is str:
        return "text/plain"
    return "application/json"


def servers(url: str) -> dict[str, Schema]:
    """AsyncAPI servers of a broker URL; none for ``memory://`` (nothing outside the process)."""
    parts = urlsplit(url)
    protocol = _PROTOCOLS.get(parts.scheme)
    if protocol is None:
        return {}
    if parts.scheme == "embedded":
        return {
            "embedded": {
                "host": "localhost",
                "protocol": protocol,
                "description": "a shoal broker started inside the app process",
            }
        }
    # Credentials (user:password@) are dropped; several bootstrap hosts become several servers.
    hosts = [h for h in parts.netloc.rpartition("@")[2].split(",") if h]
    out: dict[str, Schema] = {}
    for i, host in enumerate(hosts):
        server: Schema = {"host": host, "protocol": protocol}
        if parts.path and parts.path != "/":
            server["pathname"] = parts.path
        out[protocol if len(hosts) == 1 else f"{protocol}-{i + 1}"] = server
    return out


class Described(Protocol):
    """What the document is built from: an App (a Protocol, so that this module and app.py
    do not import each other)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def description(self) -> str | None: ...

    @property
    def url(self) -> str: ...

    @property
    def subscribers(self) -> Sequence[Subscriber]: ...

    @property
    def publishers(self) -> Sequence[Publisher]: ...


class _Changelogged(Protocol):
    @property
    def changelog(self) -> str: ...


class DocumentedProcessor(Protocol):
    """What the document needs of a stream processor (``shoal.app.streams.hosted``'s
    ProcessorSpec; named here by shape: the streams package sits above this one)."""

    @property
    def name(self) -> str: ...

    @property
    def group(self) -> str: ...

    @property
    def topics(self) -> tuple[str, ...]: ...

    @property
    def stores(self) -> Sequence[_Changelogged]: ...

    @property
    def retry(self) -> Retry: ...

    @property
    def exactly_once(self) -> bool: ...

    @property
    def handler(self) -> Any: ...

    def dlq_for(self, topic: str) -> str | None: ...

    def all_outputs(self) -> list[str]: ...


def document(app: Described) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``app``, as plain JSON-compatible data."""
    return _DocumentBuilder(app).build()


class _DocumentBuilder:
    def __init__(self, app: Described) -> None:
        self.app = app
        self.schemas = SchemaBuilder()
        self.messages: dict[str, Schema] = {}
        self.channels: dict[str, Schema] = {}
        self.operations: dict[str, Schema] = {}
        self._channel_ids: dict[str, str] = {}
        self._message_ids: dict[tuple[Any, str], str] = {}

    def build(self) -> dict[str, Any]:
        app = self.app
        for sub in app.subscribers:
            self._subscriber(sub)
        # issue 20: stream processors (``@app.processor``), on an App that has them.
        processors: Sequence[DocumentedProcessor] = getattr(app, "processors", ())
        for spec in processors:
            self._processor(spec)
        for pub in app.publishers:
            channel = self._channel(pub.topic, pub.description)
            message = self._message(channel, pub.payload_type, "")
            self._operation(f"publish_{pub.topic}", "send", channel, message, pub.description, None)
        info: Schema = {"title": app.name, "version": app.version}
        if app.description:
            info["description"] = app.description
        doc: dict[str, Any] = {"asyncapi": ASYNCAPI_VERSION, "info": info}
        found = servers(app.url)
        if found:
            doc["servers"] = found
        doc["defaultContentType"] = "application/json"
        doc["channels"] = self.channels
        doc["operations"] = self.operations
        components: Schema = {"messages": self.messages}
        if self.schemas.components:
            components["schemas"] = self.schemas.components
        doc["components"] = components
        return doc

    def _subscriber(self, sub: Subscriber) -> None:
        extension = _subscriber_extension(sub)
        dead_letter_channels: set[str] = set()  # a named DLQ is shared by all the topics
        for topic in sub.topics:
            channel = self._channel(topic, None)
            message = self._message(channel, sub.payload_type, "")
            op_id = sub.name if len(sub.topics) == 1 else f"{sub.name}_{topic}"
            op = self._operation(op_id, "receive", channel, message, sub.description, sub.group)
            op["x-shoal"] = extension
            for n, delay_ms in enumerate(sub.retry.topics, start=1):
                retry = self._channel(
                    retry_topic(topic, n),
                    f"Retry {n} of {topic}: a record that failed is delivered again from here "
                    f"{delay_ms} ms after it arrived.",
                )
                self._message(retry, sub.payload_type, "")
            dead_letters = sub.dlq_for(topic)
            if dead_letters is not None:
                dead = self._channel(
                    dead_letters,
                    f"Dead letters of {sub.name}: records that failed for good, with why in "
                    "the shoal.dlq.* headers. `shoal dlq redrive` sends them back.",
                )
                message = self._message(dead, sub.payload_type, "DeadLetter", dlq=True)
                if dead not in dead_letter_channels:
                    dead_letter_channels.add(dead)
                    self._operation(f"{sub.name}_dead_letter", "send", dead, message, None, None)
        if sub.output is not None:
            out = self._channel(sub.output, None)
            message = self._message(out, sub.output_type, "")
            self._operation(f"{sub.name}_output", "send", out, message, None, None)

    def _processor(self, spec: DocumentedProcessor) -> None:
        """A processor reads raw records (its handler decodes them) and sends to its outputs,
        its DLQ and its stores' changelogs."""
        description = typing.cast(str | None, getattr(spec.handler, "__doc__", None))
        extension: Schema = {
            "group": spec.group,
            "processor": True,
            "exactlyOnce": spec.exactly_once,
            "retry": {
                "maxAttempts": spec.retry.max_attempts,
                "baseDelayMs": spec.retry.base_delay_ms,
                "maxDelayMs": spec.retry.max_delay_ms,
            },
            "changelogs": [store.changelog for store in spec.stores],
        }
        for topic in spec.topics:
            channel = self._channel(topic, None)
            message = self._message(channel, bytes, "")
            op_id = spec.name if len(spec.topics) == 1 else f"{spec.name}_{topic}"
            op = self._operation(op_id, "receive", channel, message, description, spec.group)
            op["x-shoal"] = {**extension, "deadLetterTopic": spec.dlq_for(topic)}
        for topic in spec.all_outputs():
            channel = self._channel(topic, None)
            message = self._message(channel, bytes, "")
            self._operation(f"{spec.name}_to_{topic}", "send", channel, message, None, None)
        for store in spec.stores:
            self._channel(
                store.changelog,
                f"Changelog of a state store of {spec.name} (compacted): restored from on "
                "start and on partition reassignment.",
            )

    def _channel(self, topic: str, description: str | None) -> str:
        channel_id = self._channel_ids.get(topic)
        if channel_id is not None:
            return channel_id
        channel_id = _unique(safe_id(topic), self.channels)
        self._channel_ids[topic] = channel_id
        channel: Schema = {
            "address": topic,
            "messages": {},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        if description:
            channel["description"] = description
        self.channels[channel_id] = channel
        return channel_id

    def _message(
        self, channel_id: str, payload_type: Any, suffix: str, *, dlq: bool = False
    ) -> str:
        """Add the message for ``payload_type`` to the channel; return its id there."""
        key = (payload_type, suffix)
        message_id = self._message_ids.get(key)
        if message_id is None:
            message_id = _unique(safe_id(_type_name(payload_type) + suffix), self.messages)
            self._message_ids[key] = message_id
            message: Schema = {
                "name": message_id,
                "contentType": content_type(payload_type),
                "payload": self.schemas.schema(payload_type),
                "headers": _headers_schema(dlq),
            }
            self.messages[message_id] = message
        channel = self.channels[channel_id]
        channel["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}
        return message_id

    def _operation(
        self,
        op_id: str,
        action: str,
        channel_id: str,
        message_id: str,
        description: str | None,
        group: str | None,
    ) -> Schema:
        op: Schema = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
        }
        if description:
            op["description"] = description
        if group is not None:
            op["bindings"] = {
                "kafka": {
                    "groupId": {"type": "string", "enum": [group]},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            }
        self.operations[_unique(safe_id(op_id), self.operations)] = op
        return op


def _unique(candidate: str, taken: Mapping[str, object]) -> str:
    name, n = candidate, 2
    while name in taken:
        name, n = f"{candidate}_{n}", n + 1
    return name


def _type_name(tp: Any) -> str:
    if tp is Any or tp is object:
        return "Json"
    if tp in (bytes, bytearray):
        return "Binary"
    if tp is str:
        return "Text"
    name = getattr(tp, "__name__", None)
    return str(name) if name else "Payload"


def _headers_schema(dlq: bool) -> Schema:
    properties: Schema = {
        MESSAGE_ID_HEADER: {
            "type": "string",
            "description": "Set by shoal publishers; the idempotent consumer deduplicates on it.",
        },
        "traceparent": {"type": "string", "description": "W3C trace context, when traced."},
    }
    if dlq:
        for name in DLQ_HEADERS:
            properties[name] = {"type": "string"}
    return {"type": "object", "properties": properties}


def _subscriber_extension(sub: Subscriber) -> Schema:
    """How the subscriber behaves on failure: not in AsyncAPI's vocabulary, hence ``x-``."""
    retry = sub.retry
    extension: Schema = {
        "group": sub.group,
        "concurrency": sub.concurrency,
        "idempotent": sub.idempotent,
        "retry": {
            "maxAttempts": retry.max_attempts,
            "baseDelayMs": retry.base_delay_ms,
            "maxDelayMs": retry.max_delay_ms,
            "topicDelaysMs": list(retry.topics),
        },
        "deadLetterTopic": sub.dlq_topic,
    }
    if sub.breaker is not None:
        extension["circuitBreaker"] = True
    return extension
