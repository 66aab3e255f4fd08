"""The transaction APIs over the wire, in forms clients rarely send: AddPartitionsToTxn v4+
(batched, verify_only), ListTransactions filters, DescribeTransactions of an unknown id, and
TxnOffsetCommit outside a transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    path = Path(tmp_path_factory.mktemp("txn-wire")) / "data"
    with EmbeddedBroker(str(path), num_partitions=2) as started:
        with WireClient(started.bootstrap_servers) as client:
            client.metadata(["t"], auto_create=True)
        yield started


def init(client: WireClient, txn_id: str) -> tuple[int, int]:
    answer = client.request(
        ApiKey.INIT_PRODUCER_ID,
        4,
        {
            "transactional_id": txn_id,
            "transaction_timeout": TIMEOUT_MS,
            "producer_id": -1,
            "producer_epoch": -1,
        },
    )
    assert answer.error_code == ErrorCode.NONE
    return int(answer.producer_id), int(answer.producer_epoch)


def add_v3(client: WireClient, txn_id: str, pid: int, epoch: int, partition: int) -> int:
    answer = client.request(
        ApiKey.ADD_PARTITIONS_TO_TXN,
        3,
        {
            "v3_and_below_transactional_id": txn_id,
            "v3_and_below_producer_id": pid,
            "v3_and_below_producer_epoch": epoch,
            "v3_and_below_topics": [{"name": "t", "partitions": [partition]}],
        },
    )
    return int(answer.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code)


def batched(client: WireClient, transactions: list[dict[str, Any]]) -> dict[str, Any]:
    answer = client.request(ApiKey.ADD_PARTITIONS_TO_TXN, 4, {"transactions": transactions})
    assert answer.error_code == ErrorCode.NONE
    return {
        r.transactional_id: {
            (t.name, p.partition_index): int(p.partition_error_code)
            for t in r.topic_results
            for p in t.results_by_partition
        }
        for r in answer.results_by_transaction
    }


def test_add_partitions_v4_verifies_and_adds_in_one_batch(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        pid, epoch = init(client, "v4-a")
        other_pid, other_epoch = init(client, "v4-b")
        assert add_v3(client, "v4-a", pid, epoch, 0) == ErrorCode.NONE
        results = batched(
            client,
            [
                {
                    "transactional_id": "v4-a",
                    "producer_id": pid,
                    "producer_epoch": epoch,
                    "verify_only": True,
                    "topics": [{"name": "t", "partitions": [0, 1]}],
                },
                {
                    "transactional_id": "v4-b",
                    "producer_id": other_pid,
                    "producer_epoch": other_epoch + 1,  # a stale or future epoch: fenced
                    "verify_only": False,
                    "topics": [{"name": "t", "partitions": [1]}],
                },
            ],
        )
        assert results == {
            "v4-a": {("t", 0): ErrorCode.NONE, ("t", 1): ErrorCode.INVALID_TXN_STATE},
            "v4-b": {("t", 1): ErrorCode.PRODUCER_FENCED},
        }
        # verify_only added nothing; a v4 add does add.
        added = batched(
            client,
            [
                {
                    "transactional_id": "v4-b",
                    "producer_id": other_pid,
                    "producer_epoch": other_epoch,
                    "verify_only": False,
                    "topics": [{"name": "t", "partitions": [1]}],
                }
            ],
        )
        assert added == {"v4-b": {("t", 1): ErrorCode.NONE}}
        described = client.request(
            ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": ["v4-a", "v4-b", "nobody"]}
        )
    states = {s.transactional_id: s for s in described.transaction_states}
    assert [(t.topic, list(t.partitions)) for t in states["v4-a"].topics] == [("t", [0])]
    assert [(t.topic, list(t.partitions)) for t in states["v4-b"].topics] == [("t", [1])]
    assert states["v4-b"].transaction_state == "Ongoing"
    assert states["nobody"].error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    # An unknown partition fails alone; the rest are not attempted, and nothing is added.
    with WireClient(broker.bootstrap_servers) as client:
        answer = client.request(
            ApiKey.ADD_PARTITIONS_TO_TXN,
            3,
            {
                "v3_and_below_transactional_id": "v4-a",
                "v3_and_below_producer_id": pid,
                "v3_and_below_producer_epoch": epoch,
                "v3_and_below_topics": [{"name": "t", "partitions": [1, 7]}],
            },
        )
    codes = {
        p.partition_index: p.partition_error_code
        for p in answer.results_by_topic_v3_and_below[0].results_by_partition
    }
    assert codes == {1: ErrorCode.OPERATION_NOT_ATTEMPTED, 7: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}


def test_list_transactions_filters(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        pid, epoch = init(client, "list-open")
        assert add_v3(client, "list-open", pid, epoch, 0) == ErrorCode.NONE
        init(client, "list-empty")

        def listed(**values: Any) -> Any:
            request = {
                "state_filters": [],
                "producer_id_filters": [],
                "duration_filter": -1,
                "transactional_id_pattern": "list-.*",
                **values,
            }
            return client.request(ApiKey.LIST_TRANSACTIONS, 2, request)

        everything = listed()
        assert {
            (s.transactional_id, s.transaction_state) for s in everything.transaction_states
        } == {
            ("list-open", "Ongoing"),
            ("list-empty", "Empty"),
        }
        by_state = listed(state_filters=["Ongoing", "Sleeping"])
        assert [s.transactional_id for s in by_state.transaction_states] == ["list-open"]
        assert list(by_state.unknown_state_filters) == ["Sleeping"]
        by_pid = listed(producer_id_filters=[pid])
        assert [s.transactional_id for s in by_pid.transaction_states] == ["list-open"]
        long_running = listed(duration_filter=3_600_000)
        assert list(long_running.transaction_states) == []
        bad = listed(transactional_id_pattern="(")
        assert bad.error_code == ErrorCode.INVALID_REGULAR_EXPRESSION


def test_txn_offset_commit_needs_the_group_in_the_transaction(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        pid, epoch = init(client, "offsets-tx")
        values = {
            "transactional_id": "offsets-tx",
            "group_id": "g",
            "producer_id": pid,
            "producer_epoch": epoch,
            "generation_id": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [
                {
                    "name": "t",
                    "partitions": [
                        {"partition_index": 0, "committed_offset": 5, "committed_metadata": ""}
                    ],
                }
            ],
        }
        refused = client.request(ApiKey.TXN_OFFSET_COMMIT, 3, values)
        assert refused.topics[0].partitions[0].error_code == ErrorCode.INVALID_TXN_STATE
        added = client.request(
            ApiKey.ADD_OFFSETS_TO_TXN,
            3,
            {"transactional_id": "offsets-tx", "producer_id": pid, "producer_epoch": epoch,
             "group_id": "g"},
        )  # fmt: skip
        assert added.error_code == ErrorCode.NONE
        accepted = client.request(ApiKey.TXN_OFFSET_COMMIT, 3, values)
        assert accepted.topics[0].partitions[0].error_code == ErrorCode.NONE
        stale = client.request(ApiKey.TXN_OFFSET_COMMIT, 3, {**values, "producer_epoch": epoch - 1})
        assert stale.topics[0].partitions[0].error_code == ErrorCode.INVALID_PRODUCER_EPOCH
