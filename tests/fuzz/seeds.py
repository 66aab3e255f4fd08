"""Write the committed seed corpus: ``python -m tests.fuzz.seeds`` (replaces tests/fuzz/corpus).

Seeds are valid inputs the fuzzer mutates from: one request of every API the codec knows at its
lowest and highest version, record batches in every codec (plain, keyed with headers,
idempotent, transactional, a control marker), and schemas of each format using the features
the parsers branch on. They are made by today's code, so the corpus follows the protocol table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Final

from google.protobuf import descriptor_pb2

from shoal.protocol import SUPPORTED_APIS, RequestHeader, encode_request
from shoal.records import (
    Compression,
    SimpleRecord,
    build_batch,
    build_control_batch,
    compress,
)
from tests.fuzz.target_requests import body_seed, stream_seed
from tests.fuzz.target_sasl import SERVER_NONCE
from tests.protocol.kio_values import empty_instance, message_class

CORPUS: Final = Path(__file__).parent / "corpus"


def request_seeds() -> list[bytes]:
    seeds = []
    for key, entry in sorted(SUPPORTED_APIS.items()):
        for version in sorted({entry.min_version, entry.max_version}):
            message = empty_instance(message_class(key, version, "request"))
            frame = encode_request(RequestHeader(key, version, 7, "fuzz"), message)
            header_bytes = 4 + 8 + 2 + len("fuzz") + (1 if entry.is_flexible(version) else 0)
            seeds.append(body_seed(key, version, frame[header_bytes:]))
            if version == entry.max_version:
                seeds.append(stream_seed(frame + frame[: len(frame) // 2], chunk=7))
    return seeds


def _records() -> list[SimpleRecord]:
    return [
        SimpleRecord(key=None, value=b"plain", timestamp=1_700_000_000_000),
        SimpleRecord(
            key=b"k",
            value=None,
            timestamp=1_700_000_000_001,
            headers=(("h", b"v"), ("null", None)),
        ),
        SimpleRecord(key=b"key" * 5, value=b"x" * 300, timestamp=1_700_000_000_002),
    ]


def record_seeds() -> list[bytes]:
    seeds = []
    for codec in Compression:
        batch = build_batch(_records(), compression=codec)
        seeds.append(b"\x00" + batch)
        seeds.append(b"\x01" + batch + batch[:40])
        seeds.append(bytes([2 + 3 * codec.value]) + compress(codec.value, b"y" * 200))
    idempotent = build_batch(_records(), producer_id=5, producer_epoch=1, base_sequence=0)
    transactional = build_batch(
        _records(), producer_id=6, producer_epoch=0, base_sequence=0, transactional=True
    )
    marker = build_control_batch(
        6, 0, commit=True, coordinator_epoch=0, timestamp=1_700_000_000_003
    )
    seeds.append(b"\x00" + idempotent + transactional + marker)
    return seeds


AVRO: Final = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "lines", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "tags", "type": {"type": "map", "values": "int"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "next", "type": ["null", "Order"], "default": None},
    ],
}
JSON_SCHEMA: Final = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 0},
        "name": {"type": "string", "maxLength": 20},
        "tags": {"type": "array", "items": {"$ref": "#/definitions/tag"}},
        "kind": {"enum": ["a", "b"]},
        "either": {"oneOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["id"],
    "additionalProperties": False,
    "definitions": {"tag": {"type": "string", "pattern": "^[a-z]+$"}},
}


def _descriptor() -> bytes:
    file = descriptor_pb2.FileDescriptorProto(name="order.proto", package="shop", syntax="proto3")
    status = file.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    order = file.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=3, label=1)
    order.field.add(name="status", number=2, type=14, label=1, type_name=".shop.Status")
    order.field.add(name="lines", number=3, type=9, label=3)
    line = order.nested_type.add(name="Line")
    line.field.add(name="sku", number=1, type=9, label=1)
    order.field.add(name="first", number=4, type=11, label=1, type_name=".shop.Order.Line")
    return file.SerializeToString()


def registry_seeds() -> list[bytes]:
    return [
        b"\x00" + json.dumps(AVRO).encode(),
        b"\x00" + b'"string"',
        b"\x00" + b'["null", "int"]',
        b"\x01" + json.dumps(JSON_SCHEMA).encode(),
        b"\x01" + b"true",
        b"\x02" + _descriptor(),
    ]


def admin_seeds() -> list[bytes]:
    return [bytes((n * 37 + i * 11) % 256 for i in range(64)) for n in range(8)]


def sasl_seeds() -> list[bytes]:
    first = b"n,,n=alice,r=clientnonce"
    final = b"c=biws,r=clientnonce" + SERVER_NONCE.encode() + b",p=" + b"A" * 44
    return [
        b"\x00" + first + b"\xff" + final,
        b"\x01" + first + b"\xff" + final.replace(b"A" * 44, b"A" * 88),
        b"\x00" + b"n,a=alice,n=al=2Cice,r=x",
        b"\x02" + b"\x00alice\x00alice-secret",
        b"\x02" + b"admin\x00alice\x00wrong",
        b"\x03" + _bearer(_unsecured_jwt({"sub": "alice", "exp": 1_800_000_000})),
        b"\x03" + _bearer(_unsecured_jwt({"sub": "alice", "exp": 1}), authzid=b"bob") + b"\xff\x01",
        b"\x04" + _bearer(_unsecured_jwt({"sub": "alice", "scope": "a b"}, alg="ES256")),
    ]


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unsecured_jwt(claims: dict[str, object], *, alg: str = "none") -> bytes:
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT", "kid": "fuzz"}).encode())
    return header + b"." + _b64url(json.dumps(claims).encode()) + b"."


def _bearer(token: bytes, *, authzid: bytes = b"") -> bytes:
    """OAUTHBEARER's initial response (RFC 7628)."""
    gs2 = b"n,a=" + authzid + b"," if authzid else b"n,,"
    return gs2 + b"\x01auth=Bearer " + token + b"\x01\x01"


def write() -> None:
    groups = {
        "requests": request_seeds(),
        "records": record_seeds(),
        "registry": registry_seeds(),
        "admin": admin_seeds(),
        "sasl": sasl_seeds(),
        "planted": [b"PLANT: the harness must report this input as a crash"],
    }
    shutil.rmtree(CORPUS, ignore_errors=True)
    for target, seeds in groups.items():
        folder = CORPUS / target
        folder.mkdir(parents=True)
        for seed in seeds:
            (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


if __name__ == "__main__":
    write()
