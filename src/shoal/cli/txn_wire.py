"""The transaction admin requests of ``shoal txn``, sent through :mod:`shoal.cli.wire`.

confluent-kafka (2.16 here) has no admin API for ListTransactions, DescribeTransactions or
FindCoordinator of a transactional id, so the CLI sends these few requests itself. Only
PLAINTEXT listeners: the command says so when SASL or TLS settings are given.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from shoal.cli.wire import exchange, request

API_VERSIONS: Final = 18
FIND_COORDINATOR: Final = 10
DESCRIBE_TRANSACTIONS: Final = 65
LIST_TRANSACTIONS: Final = 66
WRITE_TXN_MARKERS: Final = 27
DESCRIBE_PRODUCERS: Final = 61
TRANSACTION_KEY_TYPE: Final = 1
"""FindCoordinator's key type of a transactional id."""


@dataclass(frozen=True)
class DescribedTxn:
    error_code: int
    transactional_id: str
    state: str
    timeout_ms: int
    start_time_ms: int
    """-1 when no transaction is open."""
    producer_id: int
    producer_epoch: int
    partitions: list[tuple[str, int]]


def describe_transactions(
    address: tuple[str, int], txn_ids: list[str], timeout_s: float
) -> list[DescribedTxn]:
    """DescribeTransactions v0, read here rather than by the generic decoder: the start time
    is -1 when no transaction is open, which the decoder's timestamp type refuses."""
    frame = exchange(address, DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": txn_ids}, timeout_s)
    r = _Reader(frame)
    r.fixed(">i")  # correlation id
    r.tags()  # response header v1
    r.fixed(">i")  # throttle time
    out: list[DescribedTxn] = []
    for _ in range(r.count()):
        error_code, txn_id, state = r.fixed(">h"), r.string(), r.string()
        timeout_ms, start_ms, pid, epoch = (
            r.fixed(">i"),
            r.fixed(">q"),
            r.fixed(">q"),
            r.fixed(">h"),
        )
        partitions: list[tuple[str, int]] = []
        for _ in range(r.count()):
            topic = r.string()
            partitions.extend((topic, r.fixed(">i")) for _ in range(r.count()))
            r.tags()
        r.tags()
        out.append(
            DescribedTxn(error_code, txn_id, state, timeout_ms, start_ms, pid, epoch, partitions)
        )
    return out


class _Reader:
    """The few flexible-version primitives DescribeTransactions v0 uses."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def fixed(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._at)
        self._at += struct.calcsize(fmt)
        return int(value)

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self._at >= len(self._data) or shift > 28:
                raise ConnectionError("the broker sent a malformed DescribeTransactions answer")
            byte = self._data[self._at]
            self._at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def count(self) -> int:
        return max(self.varint() - 1, 0)  # compact array: length + 1 (0 is null)

    def string(self) -> str:
        size = self.count()
        text = self._data[self._at : self._at + size].decode()
        self._at += size
        return text

    def tags(self) -> None:
        for _ in range(self.varint()):
            self.varint()
            self._at += self.varint()


def serves(address: tuple[str, int], api_key: int, timeout_s: float) -> bool:
    """Whether the broker at ``address`` advertises ``api_key`` in ApiVersions."""
    answer = request(address, API_VERSIONS, 0, {}, timeout_s)
    return any(int(api.api_key) == api_key for api in answer.api_keys)


def transaction_coordinator(
    address: tuple[str, int], txn_id: str, timeout_s: float
) -> tuple[int, tuple[str, int]]:
    """The node id and address of ``txn_id``'s coordinator (FindCoordinator v3).
    Raises ConnectionError with the broker's error when it names none."""
    answer = request(
        address,
        FIND_COORDINATOR,
        3,
        {"key": txn_id, "key_type": TRANSACTION_KEY_TYPE},
        timeout_s,
    )
    if int(answer.error_code) != 0:
        raise ConnectionError(
            f"FindCoordinator failed with error {int(answer.error_code)}: {answer.error_message}"
        )
    return int(answer.node_id), (str(answer.host), int(answer.port))
