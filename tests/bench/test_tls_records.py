"""bench/tls_records.py counts the TLS records of a real TLS stream, however it is split up.

The stream is made by Python's ssl over memory BIOs (TLS 1.3, the bench's certificate): known
plaintext writes, each one or more records of a known length, behind a record of another
content type that must not be counted. The scanner sees it whole, byte by byte and in uneven
pieces, as the proxy's reads would cut it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.peers.secured import Certificates
from bench.tls_records import TLS13_AEAD_OVERHEAD_BYTES, Direction, memory_bio_pair

TLS_RECORD_PLAINTEXT_BYTES = 16384
WRITES = [1, 10, 1024, 16384, 40_000, 3]


def expected_lengths(writes: list[int]) -> list[int]:
    """Each write's records: full 16 KiB ones, then the rest, each with TLS 1.3's overhead."""
    lengths = []
    for size in writes:
        while size > 0:
            part = min(size, TLS_RECORD_PLAINTEXT_BYTES)
            lengths.append(part + TLS13_AEAD_OVERHEAD_BYTES)
            size -= part
    return lengths


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    certs = Certificates(Path(tmp_path_factory.mktemp("certs")))
    client, wire, _server, _incoming = memory_bio_pair(certs)
    for size in WRITES:
        client.write(b"x" * size)
    handshake_record = bytes([22, 3, 3, 0, 4]) + b"\x00\x01\x02\x03"
    return handshake_record + wire.read()


@pytest.mark.parametrize("piece_bytes", [1, 5, 7, 4096, 1 << 20])
def test_application_records_are_counted_with_their_lengths(
    stream: bytes, piece_bytes: int
) -> None:
    seen = Direction()
    for start in range(0, len(stream), piece_bytes):
        seen.feed(stream[start : start + piece_bytes])
    assert seen.lengths == expected_lengths(WRITES)


def test_a_record_cut_short_is_not_counted_until_its_end_arrives(stream: bytes) -> None:
    seen = Direction()
    seen.feed(stream[:-1])
    assert seen.lengths == expected_lengths(WRITES)[:-1]
    seen.feed(stream[-1:])
    assert seen.lengths == expected_lengths(WRITES)
