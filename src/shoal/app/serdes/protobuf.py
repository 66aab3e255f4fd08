"""Protobuf messages through a schema registry, in Confluent's wire format.

After the magic byte and schema id comes the path of the message type inside its .proto file,
then the message::

    +------+-----------+-------------------------------------+---------------------+
    | 0x00 | schema id | message indexes (zigzag varints)    | protobuf message    |
    |      |  4 bytes  | count, then one index per nesting   |                     |
    +------+-----------+-------------------------------------+---------------------+

The indexes [0] (the file's first top-level message, by far the most common) are written as
the single byte 0x00, as Confluent's serializers do.

Registration follows confluent-kafka's ProtobufSerializer: the message's file is registered as
a serialized FileDescriptorProto (base64) under the topic's subject, each file it imports
first under the file's own name, referenced by name; Google's and Confluent's well-known files
are left out, as every registry knows them.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from shoal.app.serdes.payload import SerdeError
from shoal.app.serdes.registry import (
    Reference,
    RegisteredSchema,
    RegistryClient,
    SubjectStrategy,
    WireFormatError,
    frame,
    topic_name_strategy,
    unframe,
)
from shoal.app.serdes.schema_cache import SchemaCache, subject_schema

INDEXES_MAX = 64
"""Message nesting depth we accept: protoc itself refuses far shallower files, and a corrupt
count must not make us read (or allocate) thousands of varints."""
VARINT_BYTES_MAX = 10
"""A 64-bit varint takes at most 10 bytes; more is corruption."""
WELL_KNOWN_PREFIXES = ("google/protobuf/", "google/type/", "confluent/")


def message_indexes(descriptor: Descriptor) -> list[int]:
    """The path of ``descriptor`` in its file: top-level index, then nested indexes."""
    path: list[int] = []
    current = descriptor
    while current.containing_type is not None:
        parent = current.containing_type
        path.append(list(parent.nested_types).index(current))
        current = parent
    top = list(current.file.message_types_by_name.values())
    path.append(top.index(current))
    return path[::-1]


def _zigzag_varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_indexes(indexes: list[int]) -> bytes:
    if indexes == [0]:
        return b"\x00"
    return b"".join(_zigzag_varint(v) for v in [len(indexes), *indexes])


def decode_indexes(data: memoryview) -> tuple[list[int], int]:
    """The message indexes at the start of ``data`` and the number of bytes they took."""
    pos = 0

    def read() -> int:
        nonlocal pos
        result = shift = 0
        for _ in range(VARINT_BYTES_MAX):
            if pos >= len(data):
                raise WireFormatError("the record ends inside its Protobuf message indexes")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
        raise WireFormatError("a Protobuf message index varint is longer than 10 bytes")

    count = read()
    if count == 0:
        return [0], pos
    if not 0 < count <= INDEXES_MAX:
        raise WireFormatError(f"{count} Protobuf message indexes: expected 1..{INDEXES_MAX}")
    return [read() for _ in range(count)], pos


async def _nothing_to_prepare(registered: RegisteredSchema) -> None:
    del registered


def _file_schema(file: Any) -> str:  # protobuf's C and Python descriptors differ in type
    return base64.standard_b64encode(file.serialized_pb).decode("ascii")


class ProtobufCodec:
    """Messages of the generated class ``message_class`` through the registry at
    ``registry_url``. ``encode`` takes a message of that class (or a dict of its fields);
    ``decode`` returns one. ``auto_register``, ``use_latest`` and ``subject`` as for
    :class:`~shoal.app.serdes.schemas.AvroCodec`; imported files are registered under their file
    names when ``auto_register`` is on, and looked up otherwise.
    """

    def __init__(
        self,
        registry_url: str,
        message_class: type[Message],
        *,
        auto_register: bool = True,
        use_latest: bool = False,
        subject: SubjectStrategy | None = None,
    ) -> None:
        descriptor = getattr(message_class, "DESCRIPTOR", None)
        if not isinstance(descriptor, Descriptor):
            raise TypeError(f"{message_class!r} is not a generated protobuf message class")
        self.message_class = message_class
        self._indexes = encode_indexes(message_indexes(descriptor))
        self.auto_register = auto_register
        self.use_latest = use_latest
        self.subject = subject or topic_name_strategy
        self.registry = RegistryClient(registry_url)
        file = descriptor.file
        # The reader decodes into its own class, so a schema needs no preparing: the cache
        # only checks the ids records name (and the first write registers the file's imports).
        self._schemas: SchemaCache[None] = SchemaCache(
            self.registry,
            "PROTOBUF",
            _nothing_to_prepare,
            schema=_file_schema(file),
            auto_register=auto_register,
            use_latest=use_latest,
            references=None if use_latest else lambda: self._dependencies(file),
        )

    async def encode(self, topic: str, value: object) -> bytes:
        message = self._message(value)
        schema_id, _ = await self._schemas.writer(self.subject(topic))
        return frame(schema_id, self._indexes + message.SerializeToString())

    async def decode(self, topic: str, raw: bytes) -> Any:
        schema_id, payload = unframe(raw)
        await self._schemas.reader(schema_id)
        _, used = decode_indexes(payload)
        # The indexes name a type in the writer's file; the reader decodes into its own class,
        # as confluent-kafka's ProtobufDeserializer does: field numbers carry compatibility.
        try:
            return self.message_class.FromString(bytes(payload[used:]))
        except DecodeError as exc:
            name = self.message_class.DESCRIPTOR.full_name
            raise SerdeError(f"the payload is not a valid {name}: {exc}") from exc

    def _message(self, value: object) -> Message:
        if isinstance(value, self.message_class):
            return value
        name = self.message_class.DESCRIPTOR.full_name
        if isinstance(value, dict):
            try:
                return json_format.ParseDict(value, self.message_class())
            except json_format.ParseError as exc:
                raise ValueError(f"the value does not fit {name}: {exc}") from exc
        raise ValueError(f"expected a {name} message or a dict of its fields, got {value!r:.60}")

    async def _dependencies(self, file: Any) -> tuple[Reference, ...]:
        """Register (or look up) the files ``file`` imports, depth first; their references."""
        references = []
        for dependency in file.dependencies:
            if dependency.name.startswith(WELL_KNOWN_PREFIXES):
                continue
            nested = await self._dependencies(dependency)
            registered = await subject_schema(
                self.registry,
                dependency.name,
                _file_schema(dependency),
                "PROTOBUF",
                nested,
                auto_register=self.auto_register,
                use_latest=False,
            )
            if not registered.version:  # registration answers the id only
                registered = await self.registry.lookup(
                    dependency.name, registered.schema, "PROTOBUF", nested
                )
            references.append(Reference(dependency.name, dependency.name, registered.version))
        return tuple(references)
