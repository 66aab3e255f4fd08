"""``shoal txn``: list, describe and abort transactions, like Kafka's ``kafka-transactions.sh
list``, ``describe`` and ``abort``.

``list`` asks every broker of the cluster (ListTransactions), ``describe`` asks the id's
transaction coordinator (FindCoordinator, then DescribeTransactions), so both work against a
Kafka cluster as well. The requests go over the wire (:mod:`shoal.cli.txn_wire`): the installed
confluent-kafka has no transaction admin API.

``abort`` is Kafka's way to end a *hanging* transaction (one whose producer is gone but whose
coordinator lost track of it): it writes an ABORT marker to the partition itself with
WriteTxnMarkers (API 27), sent to the partition's leader, for the producer id and epoch and the
coordinator epoch that ``kafka-transactions.sh describe-producers`` (or ``find-hanging``) shows.
The principal needs CLUSTER_ACTION on the cluster.
"""

from __future__ import annotations

import argparse
import json
import struct
from typing import Any, Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from shoal.cli.common import ClientContext, CliError, add_client_options
from shoal.cli.txn_wire import (
    DESCRIBE_PRODUCERS,
    LIST_TRANSACTIONS,
    WRITE_TXN_MARKERS,
    describe_transactions,
    serves,
    transaction_coordinator,
)
from shoal.cli.wire import request

TRANSACTIONAL_ID_NOT_FOUND: Final = 105
ABORT_ERRORS: Final = {
    3: "the partition does not exist",
    31: "not authorized (CLUSTER_ACTION on the cluster is needed)",
    47: "the producer epoch is older than the partition's (INVALID_PRODUCER_EPOCH)",
    52: "the coordinator epoch is older than the partition's (TRANSACTION_COORDINATOR_FENCED)",
}
"""WriteTxnMarkers' errors for one partition, as an operator reads them."""
STATES: Final = (
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "PrepareEpochFence",
    "Dead",
)


def add_txn_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    txn = sub.add_parser("txn", help="list and describe transactions (kafka-transactions.sh)")
    actions = txn.add_subparsers(dest="txn_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="the transactional ids every broker knows")
    listing.add_argument(
        "--state", choices=STATES, action="append", help="only these states (repeatable)"
    )
    listing.add_argument(
        "--producer-id", type=int, action="append", help="only these producer ids (repeatable)"
    )
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(run=run_list, command_parser=listing)

    describe = actions.add_parser("describe", help="one transactional id's current transaction")
    describe.add_argument("transactional_id")
    describe.add_argument("--format", choices=["text", "json"], default="text")
    describe.set_defaults(run=run_describe, command_parser=describe)

    abort = actions.add_parser(
        "abort", help="abort a hanging transaction: write its ABORT marker (WriteTxnMarkers)"
    )
    abort.add_argument("--topic", required=True)
    abort.add_argument("--partition", type=int, required=True)
    abort.add_argument(
        "--start-offset",
        type=int,
        help="the open transaction's first offset (its producer is looked up with "
        "DescribeProducers); or give the three ids below",
    )
    abort.add_argument("--producer-id", type=int)
    abort.add_argument("--producer-epoch", type=int)
    abort.add_argument("--coordinator-epoch", type=int)
    abort.set_defaults(run=run_abort, command_parser=abort)
    for parser in (listing, describe, abort):
        add_client_options(parser)


def _bootstrap_address(ctx: ClientContext) -> tuple[str, int]:
    _plaintext_only(ctx)
    first = ctx.bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"bootstrap server {first!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _plaintext_only(ctx: ClientContext) -> None:
    protocol = str(ctx.config().get("security.protocol", "PLAINTEXT")).upper()
    if protocol != "PLAINTEXT":
        raise CliError(
            f"shoal txn speaks only to PLAINTEXT listeners (not {protocol}): the installed "
            "confluent-kafka has no transaction admin API, so these requests go over a plain "
            "connection; use kafka-transactions.sh on this listener"
        )


def _brokers(ctx: ClientContext) -> list[tuple[int, tuple[str, int]]]:
    _plaintext_only(ctx)
    admin = AdminClient(ctx.config())
    try:
        metadata = admin.list_topics(timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.unreachable(exc.args[0].code()) from None
    return sorted((b.id, (str(b.host), b.port)) for b in metadata.brokers.values())


def run_list(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    rows: list[dict[str, Any]] = []
    for node_id, address in _brokers(ctx):
        body = {"state_filters": args.state or [], "producer_id_filters": args.producer_id or []}
        try:
            answer = request(address, LIST_TRANSACTIONS, 0, body, ctx.timeout_s)
        except OSError as exc:
            raise CliError(f"could not list the transactions of broker {node_id}: {exc}") from None
        if int(answer.error_code) != 0:
            raise CliError(
                f"broker {node_id} answered ListTransactions with error {int(answer.error_code)}"
            )
        rows.extend(
            {
                "transactional_id": t.transactional_id,
                "coordinator": node_id,
                "producer_id": int(t.producer_id),
                "state": t.transaction_state,
            }
            for t in answer.transaction_states
        )
    rows.sort(key=lambda r: r["transactional_id"])
    if args.format == "json":
        print(json.dumps(rows))
        return 0
    print("TransactionalId\tCoordinator\tProducerId\tTransactionState")
    for r in rows:
        print(f"{r['transactional_id']}\t{r['coordinator']}\t{r['producer_id']}\t{r['state']}")
    return 0


def run_describe(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    txn_id: str = args.transactional_id
    try:
        node_id, address = transaction_coordinator(_bootstrap_address(ctx), txn_id, ctx.timeout_s)
        (state,) = describe_transactions(address, [txn_id], ctx.timeout_s)
    except (OSError, struct.error, ValueError) as exc:
        raise CliError(f"could not ask the coordinator of {txn_id!r}: {exc}") from None
    code = state.error_code
    if code == TRANSACTIONAL_ID_NOT_FOUND:
        raise CliError(f"transactional id {txn_id!r} not found")
    if code != 0:
        raise CliError(f"DescribeTransactions of {txn_id!r} failed with error {code}")
    start_ms = state.start_time_ms
    partitions = sorted(f"{t}-{p}" for t, p in state.partitions)
    doc = {
        "coordinator": node_id,
        "transactional_id": txn_id,
        "producer_id": state.producer_id,
        "producer_epoch": state.producer_epoch,
        "state": state.state,
        "transaction_timeout_ms": state.timeout_ms,
        "current_transaction_start_time_ms": start_ms if start_ms >= 0 else None,
        "topic_partitions": partitions,
    }
    if args.format == "json":
        print(json.dumps(doc))
        return 0
    print(
        "CoordinatorId\tTransactionalId\tProducerId\tProducerEpoch\tTransactionState\t"
        "TransactionTimeoutMs\tCurrentTransactionStartTimeMs\tTopicPartitions"
    )
    started = "None" if start_ms < 0 else str(start_ms)
    print(
        f"{node_id}\t{txn_id}\t{doc['producer_id']}\t{doc['producer_epoch']}\t{doc['state']}\t"
        f"{doc['transaction_timeout_ms']}\t{started}\t{','.join(partitions)}"
    )
    return 0


def run_abort(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    topic, partition = str(args.topic), int(args.partition)
    ids = (args.producer_id, args.producer_epoch, args.coordinator_epoch)
    by_offset = args.start_offset is not None and all(i is None for i in ids)
    by_ids = args.start_offset is None and None not in ids
    if not (by_offset or by_ids):
        raise CliError(
            "give either --start-offset or all of --producer-id, --producer-epoch and "
            "--coordinator-epoch"
        )
    address = _leader(ctx, topic, partition)
    try:
        if not serves(address, WRITE_TXN_MARKERS, ctx.timeout_s):
            raise CliError("the partition's leader does not serve WriteTxnMarkers (API 27)")
        if args.start_offset is not None:
            ids = _open_at(address, topic, partition, int(args.start_offset), ctx.timeout_s)
        producer_id, producer_epoch, coordinator_epoch = ids
        answer = request(
            address,
            WRITE_TXN_MARKERS,
            1,
            {
                "markers": [
                    {
                        "producer_id": producer_id,
                        "producer_epoch": producer_epoch,
                        "transaction_result": False,
                        "topics": [{"name": topic, "partition_indexes": [partition]}],
                        "coordinator_epoch": coordinator_epoch,
                    }
                ]
            },
            ctx.timeout_s,
        )
    except (OSError, struct.error, ValueError) as exc:
        raise CliError(f"could not ask the leader of {topic}-{partition}: {exc}") from None
    code = int(answer.markers[0].topics[0].partitions[0].error_code)
    if code != 0:
        reason = ABORT_ERRORS.get(code, f"error {code}")
        raise CliError(f"could not abort the transaction on {topic}-{partition}: {reason}")
    print(f"aborted the transaction of producer {producer_id} on {topic}-{partition}")
    return 0


def _open_at(
    address: tuple[str, int], topic: str, partition: int, start: int, timeout_s: float
) -> tuple[int, int, int]:
    """The producer id, epoch and coordinator epoch of the transaction open at ``start``
    (DescribeProducers), as kafka-transactions abort --start-offset finds them."""
    answer = request(
        address,
        DESCRIBE_PRODUCERS,
        0,
        {"topics": [{"name": topic, "partition_indexes": [partition]}]},
        timeout_s,
    )
    described = answer.topics[0].partitions[0]
    if int(described.error_code) != 0:
        raise CliError(
            f"DescribeProducers of {topic}-{partition} failed with error "
            f"{int(described.error_code)}: {described.error_message}"
        )
    for producer in described.active_producers:
        if int(producer.current_txn_start_offset) == start:
            # A producer that has seen no marker has coordinator epoch -1: Kafka's tool then
            # sends 0, the lowest a coordinator has.
            coordinator_epoch = max(0, int(producer.coordinator_epoch))
            return int(producer.producer_id), int(producer.producer_epoch), coordinator_epoch
    raise CliError(f"no transaction is open at offset {start} of {topic}-{partition}")


def _leader(ctx: ClientContext, topic: str, partition: int) -> tuple[str, int]:
    """The address of the partition's leader, from the cluster's metadata."""
    _plaintext_only(ctx)
    admin = AdminClient(ctx.config())
    try:
        metadata = admin.list_topics(topic=topic, timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.unreachable(exc.args[0].code()) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or partition not in found.partitions:
        raise CliError(f"partition {topic}-{partition} does not exist")
    leader = metadata.brokers.get(found.partitions[partition].leader)
    if leader is None:
        raise CliError(f"partition {topic}-{partition} has no leader")
    return str(leader.host), int(leader.port)
