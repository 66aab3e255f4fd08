"""``shoal produce`` and ``shoal consume`` round trips against a real broker."""

from __future__ import annotations

import json
import time

import pytest

from tests.cli.support import Cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _produce(cli: Cli, *argv: str, stdin: bytes) -> str:
    result = cli("produce", *argv, stdin=stdin)
    assert result.code == 0, result.err
    return result.out


def test_keys_and_headers_round_trip_in_kcat_format(cli: Cli) -> None:
    summary = _produce(
        cli, "t", "-p", "0", "-K", ":", "-H", "app=cli", "-H", "v=2",
        stdin=b"k1:one\nk2:two:with:colons\nno-separator\n",
    )  # fmt: skip
    assert summary.startswith("Produced 3 records")
    assert "partition 0 offsets 0-2" in summary

    result = cli("consume", "t", "-o", "beginning", "-e", "-f", r"%k:%s:%h\n")
    assert result.code == 0, result.err
    assert result.lines == [
        "k1:one:app=cli,v=2",
        "k2:two:with:colons:app=cli,v=2",
        ":no-separator:app=cli,v=2",
    ]
    assert "Processed a total of 3 messages" in result.err


def test_every_format_token(cli: Cli) -> None:
    _produce(cli, "t", "-p", "1", "-K", "=", stdin=b"key=value\n")
    result = cli(
        "consume", "t", "-p", "1", "-e", "-q",
        "-f", r"%t|%p|%o|%k|%s|%K|%S|%h|100%%|%T\t.\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    (line,) = result.lines
    fields = line.split("|")
    assert fields[:9] == ["t", "1", "0", "key", "value", "3", "5", "", "100%"]
    timestamp, tail = fields[9].split("\t")
    assert abs(int(timestamp) - time.time() * 1000) < 60_000
    assert tail == "."


def test_null_key_and_value_lengths(cli: Cli) -> None:
    # -Z: empty becomes null; kcat prints -1 as the length of a null key or value.
    _produce(cli, "t", "-p", "0", "-K", ":", "-Z", stdin=b":v\nk:\nplain\n")
    result = cli("consume", "t", "-p", "0", "-e", "-q", "-f", r"%K %S\n")
    assert result.lines == ["-1 1", "1 -1", "-1 5"]


def test_json_output(cli: Cli) -> None:
    # The key ends at the first separator; later ones belong to the value (as in kcat).
    _produce(cli, "t", "-p", "2", "-K", ":", "-H", "h=1", stdin=b"k:v:w\nnokey\n")
    result = cli("consume", "t", "-e", "-q", "--format", "json")
    assert result.code == 0, result.err
    docs = [json.loads(line) for line in result.lines]
    assert [(d["partition"], d["offset"], d["key"], d["value"]) for d in docs] == [
        (2, 0, "k", "v:w"),
        (2, 1, None, "nokey"),
    ]
    for doc in docs:
        assert doc["topic"] == "t"
        assert doc["headers"] == [{"key": "h", "value": "1"}]
        assert doc["timestamp_type"] == "CreateTime"
        assert isinstance(doc["timestamp"], int)


def test_json_output_keeps_binary_values(cli: Cli) -> None:
    _produce(cli, "t", "-p", "0", stdin=b"\xff\xfe\n")
    (line,) = cli("consume", "t", "-e", "-q", "--format", "json").lines
    doc = json.loads(line)
    assert doc["value"] == "//4="
    assert doc["value_encoding"] == "base64"


def test_offset_minus_n_is_per_partition(cli: Cli) -> None:
    for p in range(3):
        lines = b"".join(b"p%d-%d\n" % (p, i) for i in range(5))
        _produce(cli, "t", "-p", str(p), stdin=lines)
    result = cli("consume", "t", "-o", "-2", "-e", "-q", "-f", r"%s\n")
    assert result.code == 0, result.err
    assert sorted(result.lines) == ["p0-3", "p0-4", "p1-3", "p1-4", "p2-3", "p2-4"]


def test_offset_minus_n_beyond_the_start_is_clamped(cli: Cli) -> None:
    _produce(cli, "t", "-p", "0", stdin=b"a\nb\n")
    result = cli("consume", "t", "-p", "0", "-o", "-10", "-e", "-q")
    assert result.lines == ["a", "b"]


def test_absolute_offset_and_partition(cli: Cli) -> None:
    _produce(cli, "t", "-p", "1", stdin=b"".join(b"%d\n" % i for i in range(6)))
    _produce(cli, "t", "-p", "2", stdin=b"other\n")
    result = cli("consume", "t", "-p", "1", "-o", "4", "-e", "-q", "-f", r"%o=%s\n")
    assert result.lines == ["4=4", "5=5"]


def test_offset_end_prints_nothing_old(cli: Cli) -> None:
    _produce(cli, "t", "-p", "0", stdin=b"old\n")
    result = cli("consume", "t", "-o", "end", "-e")
    assert result.code == 0, result.err
    assert result.out == ""


def test_offset_by_timestamp(cli: Cli) -> None:
    _produce(cli, "t", "-p", "0", stdin=b"before-1\nbefore-2\n")
    time.sleep(0.05)  # CreateTime has millisecond resolution: keep the two batches apart
    cut_ms = int(time.time() * 1000)
    time.sleep(0.05)
    _produce(cli, "t", "-p", "0", stdin=b"after-1\nafter-2\n")
    _produce(cli, "t", "-p", "1", stdin=b"after-3\n")
    result = cli("consume", "t", "-o", f"@{cut_ms}", "-e", "-q")
    assert result.code == 0, result.err
    assert sorted(result.lines) == ["after-1", "after-2", "after-3"]
    # A time after every record: nothing old is printed.
    later = cli("consume", "t", "-o", f"@{int(time.time() * 1000) + 60_000}", "-e", "-q")
    assert later.out == ""


def test_count_stops_early(cli: Cli) -> None:
    _produce(cli, "t", "-p", "0", stdin=b"1\n2\n3\n4\n")
    result = cli("consume", "t", "-c", "2")  # no -e: the count alone must end it
    assert result.code == 0, result.err
    assert result.lines == ["1", "2"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_and_acks(cli: Cli, codec: str) -> None:
    lines = b"".join(b"record %d %s\n" % (i, b"x" * 50) for i in range(20))
    _produce(cli, "t", "-p", "0", "--compression", codec, "--acks", "1", stdin=lines)
    result = cli("consume", "t", "-e", "-q")
    assert result.out.encode() == lines


def test_acks_zero_still_delivers(cli: Cli) -> None:
    _produce(cli, "t", "-p", "0", "--acks", "0", stdin=b"fire\nforget\n")
    result = cli("consume", "t", "-e", "-q")
    assert result.lines == ["fire", "forget"]


def test_keyed_records_spread_by_key(cli: Cli) -> None:
    keys = [f"key-{i}" for i in range(30)]
    _produce(cli, "t", "-K", ":", stdin="".join(f"{k}:v\n" for k in keys).encode())
    result = cli("consume", "t", "-e", "-q", "-f", r"%k %p\n")
    partition_of = dict(line.split() for line in result.lines)
    assert sorted(partition_of) == sorted(keys)
    assert len(set(partition_of.values())) > 1, "30 keys should not all hash to one partition"
    # The same key always lands on the same partition.
    _produce(cli, "t", "-K", ":", stdin=b"key-7:again\n")
    again = cli("consume", "t", "-e", "-q", "-f", r"%k %p %s\n")
    assert f"key-7 {partition_of['key-7']} again" in again.lines
