"""Protobuf: ``.proto`` text compiled by protoc (bundled with grpcio-tools) into a
FileDescriptorProto, or a base64 FileDescriptorProto as confluent-kafka's ProtobufSerializer
sends; both forms of one schema get the same identity, so they share an id.

Compatibility is checked on the wire: only field numbers and wire types reach the bytes, so
renaming a field is harmless, while changing a field's wire type, reusing a reserved number,
adding or removing a required field, removing a message, or moving existing fields into a oneof
breaks readers. As Confluent does, FORWARD runs the same comparison with the two schemas swapped.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from shoal.registry.formats.base import ParsedSchema, ResolvedReference, SchemaParseError

FDP = descriptor_pb2.FieldDescriptorProto
MAIN_FILE: Final = "schema.proto"
PROTOC_TIMEOUT_S: Final = 30.0
"""protoc compiles one file and its imports; far longer means it is stuck."""


def _well_known_include() -> str:
    """grpcio-tools ships google/protobuf/*.proto beside protoc; found without importing it,
    since importing loads protoc's extension module in the broker process for nothing."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise SchemaParseError("Protobuf schemas need grpcio-tools (pip install grpcio-tools)")
    return str(Path(spec.origin).parent / "_proto")


# Field types that share a wire encoding, so a reader decodes one as the other without error.
WIRE_GROUPS: Final = (
    {
        FDP.TYPE_INT32,
        FDP.TYPE_UINT32,
        FDP.TYPE_INT64,
        FDP.TYPE_UINT64,
        FDP.TYPE_BOOL,
        FDP.TYPE_ENUM,
    },
    {FDP.TYPE_SINT32, FDP.TYPE_SINT64},
    {FDP.TYPE_FIXED32, FDP.TYPE_SFIXED32},
    {FDP.TYPE_FIXED64, FDP.TYPE_SFIXED64},
    {FDP.TYPE_STRING, FDP.TYPE_BYTES},
)
LENGTH_DELIMITED: Final = {FDP.TYPE_STRING, FDP.TYPE_BYTES, FDP.TYPE_MESSAGE}


class ProtobufSchema:
    schema_type = "PROTOBUF"

    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self.file = file
        self._serialized = file.SerializeToString(deterministic=True)

    @property
    def canonical(self) -> str:
        return base64.standard_b64encode(self._serialized).decode("ascii")

    @property
    def normalized(self) -> bytes:
        """The descriptor up to what the two client forms disagree on: the file's name (a
        registry-chosen name for ``.proto`` text, the generated file's name for a descriptor)
        and the ``json_name`` protoc fills in only for descriptor sets. Equal bytes: the same
        schema, whether it arrived as text or as a base64 descriptor."""
        file = descriptor_pb2.FileDescriptorProto()
        file.CopyFrom(self.file)
        file.ClearField("name")
        file.ClearField("source_code_info")
        pending = list(file.message_type)
        while pending:  # every message, map entries and nested ones included
            message = pending.pop()
            pending += message.nested_type
            for f in message.field:
                f.ClearField("json_name")
        return file.SerializeToString(deterministic=True)

    @property
    def normal_form(self) -> None:
        return None

    def render(self, fmt: str | None) -> str | None:
        if fmt == "serialized":
            return self.canonical
        return None

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        if not isinstance(writer, ProtobufSchema):
            return ["the schema type changed (a subject's versions share one type)"]
        errors: list[str] = []
        readers = dict(_messages(self.file))
        for name, w_msg in _messages(writer.file):
            r_msg = readers.get(name)
            if r_msg is None:
                errors.append(f"{name}: MESSAGE_REMOVED")
                continue
            errors += _compare_message(name, r_msg, w_msg)
        return errors


def _messages(
    file: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    def walk(
        prefix: str, messages: Sequence[descriptor_pb2.DescriptorProto]
    ) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
        for message in messages:
            if message.options.map_entry:
                continue  # map entries are compared through the map field's type name
            full = f"{prefix}.{message.name}"
            yield full, message
            yield from walk(full, message.nested_type)

    yield from walk(f".{file.package}" if file.package else "", file.message_type)


def _compare_message(
    name: str, r_msg: descriptor_pb2.DescriptorProto, w_msg: descriptor_pb2.DescriptorProto
) -> list[str]:
    errors: list[str] = []
    r_fields = {f.number: f for f in r_msg.field}
    w_fields = {f.number: f for f in w_msg.field}
    reserved = [(rr.start, rr.end) for rr in w_msg.reserved_range]
    for number, w_field in sorted(w_fields.items()):
        r_field = r_fields.get(number)
        where = f"{name}.{w_field.name} (#{number})"
        if r_field is None:
            # A required field the reader dropped is simply skipped; the reverse direction (a
            # reader requiring what the writer lacks) is caught below as REQUIRED_FIELD_ADDED.
            if w_field.HasField("oneof_index"):
                errors.append(f"{where}: ONEOF_FIELD_REMOVED")
            continue
        errors += _compare_field(where, r_field, w_field)
    for number, r_field in sorted(r_fields.items()):
        if number in w_fields:
            continue
        where = f"{name}.{r_field.name} (#{number})"
        if r_field.label == FDP.LABEL_REQUIRED:
            errors.append(f"{where}: REQUIRED_FIELD_ADDED")
        if any(start <= number < end for start, end in reserved):
            # Data written before the number was reserved may carry another type under it.
            errors.append(f"{where}: FIELD_NUMBER_RESERVED_REUSED")
    errors += _compare_oneofs(name, r_msg, w_msg)
    return errors


def _compare_field(
    where: str,
    r_field: descriptor_pb2.FieldDescriptorProto,
    w_field: descriptor_pb2.FieldDescriptorProto,
) -> list[str]:
    errors: list[str] = []
    r_type, w_type = r_field.type, w_field.type
    if r_type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP) or w_type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
        if r_type != w_type:
            errors.append(f"{where}: FIELD_KIND_CHANGED")
        elif r_field.type_name != w_field.type_name:
            errors.append(f"{where}: FIELD_NAMED_TYPE_CHANGED")
    elif r_type != w_type:
        if not any(r_type in group and w_type in group for group in WIRE_GROUPS):
            errors.append(f"{where}: FIELD_SCALAR_KIND_CHANGED")
    elif r_type == FDP.TYPE_ENUM and r_field.type_name != w_field.type_name:
        errors.append(f"{where}: FIELD_NAMED_TYPE_CHANGED")
    r_repeated = r_field.label == FDP.LABEL_REPEATED
    w_repeated = w_field.label == FDP.LABEL_REPEATED
    if r_repeated != w_repeated and not (r_type in LENGTH_DELIMITED and w_type in LENGTH_DELIMITED):
        errors.append(f"{where}: FIELD_LABEL_CHANGED")
    if r_field.label == FDP.LABEL_REQUIRED and w_field.label != FDP.LABEL_REQUIRED:
        errors.append(f"{where}: REQUIRED_FIELD_ADDED")
    return errors


def _compare_oneofs(
    name: str, r_msg: descriptor_pb2.DescriptorProto, w_msg: descriptor_pb2.DescriptorProto
) -> list[str]:
    """A reader's oneof keeps only the last of its members on the wire, so existing fields
    moved into a oneof silently lose data: flagged unless it is a single field in a new one."""
    errors: list[str] = []
    w_oneof_names = {o.name for o in w_msg.oneof_decl}
    w_numbers = {f.number: f for f in w_msg.field}
    for index, oneof in enumerate(r_msg.oneof_decl):
        moved = [
            f.number
            for f in r_msg.field
            if f.HasField("oneof_index")
            and f.oneof_index == index
            and f.number in w_numbers
            and not w_numbers[f.number].HasField("oneof_index")
        ]
        if not moved:
            continue
        if oneof.name in w_oneof_names:
            errors.append(f"{name}.{oneof.name}: FIELD_MOVED_TO_EXISTING_ONEOF {moved}")
        elif len(moved) > 1:
            errors.append(f"{name}.{oneof.name}: MULTIPLE_FIELDS_MOVED_TO_ONEOF {moved}")
    return errors


def parse_protobuf(text: str, references: Sequence[ResolvedReference]) -> ProtobufSchema:
    descriptor = decode_descriptor(text)
    if descriptor is not None:
        return ProtobufSchema(descriptor)
    return ProtobufSchema(_compile(text, references))


def decode_descriptor(text: str) -> descriptor_pb2.FileDescriptorProto | None:
    """A base64 FileDescriptorProto, or None when ``text`` is not one (then it is .proto)."""
    stripped = text.strip()
    if not stripped or any(c.isspace() for c in stripped):
        return None  # .proto source always has whitespace; base64 has none
    try:
        raw = base64.b64decode(stripped, validate=True)
        file = descriptor_pb2.FileDescriptorProto()
        file.ParseFromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        return None
    if not file.name and not file.message_type:
        return None
    return file


def _compile(
    text: str, references: Sequence[ResolvedReference]
) -> descriptor_pb2.FileDescriptorProto:
    with tempfile.TemporaryDirectory(prefix="shoal-proto-") as tmp:
        root = Path(tmp) / "src"
        root.mkdir()
        # A reference registered as a base64 descriptor (as confluent-kafka's serializer
        # registers imports) reaches protoc as a descriptor set; .proto text as a file.
        given = descriptor_pb2.FileDescriptorSet()
        for ref in references:
            target = (root / ref.name).resolve()
            if not target.is_relative_to(root.resolve()):
                raise SchemaParseError(f"reference name '{ref.name}' leaves the import root")
            descriptor = decode_descriptor(ref.schema)
            if descriptor is not None:
                descriptor.name = ref.name
                given.file.append(descriptor)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(ref.schema)
        (root / MAIN_FILE).write_text(text)
        out = Path(tmp) / "out.desc"
        extra: list[str] = []
        if given.file:
            given_path = Path(tmp) / "given.desc"
            given_path.write_bytes(given.SerializeToString())
            extra.append(f"--descriptor_set_in={given_path}")
        # protoc runs in a child process: it reports errors on its stderr, which an in-process
        # call would send to the broker's own stderr instead of to the user.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{root}",
                f"-I{_well_known_include()}",
                f"--descriptor_set_out={out}",
                *extra,
                MAIN_FILE,
            ],
            capture_output=True,
            text=True,
            timeout=PROTOC_TIMEOUT_S,
            cwd=root,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=False,
        )
        if result.returncode != 0:
            detail = result.stderr.strip().replace(str(root) + os.sep, "")
            raise SchemaParseError(detail or "protoc rejected the schema")
        files = descriptor_pb2.FileDescriptorSet()
        files.ParseFromString(out.read_bytes())
    if not files.file:
        raise SchemaParseError("protoc produced no descriptor")
    descriptor = files.file[-1]
    descriptor.ClearField("source_code_info")
    return descriptor
