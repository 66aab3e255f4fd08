"""Kafka 4.4's Java transactional producer on transactions V2 (KIP-890 part 2), against
Apache Kafka and shoal, which both finalize ``transaction.version`` 2.

``tests/peers/java/TxnV2Check.java`` commits, aborts, commits with a group's offsets, and is
then fenced by a second instance of its transactional id, which commits. Both brokers must
give the same story: the same steps printed (the zombie's fencing error included), the same
records for a read_committed reader (exactly the committed ones), the same committed offset,
and the same final producer epoch, which on V2 counts every transaction's bump (on the classic
protocol it would be 1: one initTransactions per instance)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.differential.scenarios import create_topic, unique
from tests.differential.tools import ok
from tests.differential.txn_scenarios import read_to_end
from tests.differential.txn_v2_scenarios import _committed
from tests.peers.kafka_apps import compile_java
from tests.peers.kafka_peer import classpath, kafka_tool, tool_jvm_options

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 120.0
TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"


@pytest.fixture(scope="module")
def txn_v2_classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_java("TxnV2Check.java", classpath(), tmp_path_factory.mktemp("txnv2"))


def run_check(cp: str, bootstrap: str) -> dict[str, Any]:
    topic, txn_id, group = create_topic(bootstrap), unique("jtv2"), unique("jtv2-group")
    done = subprocess.run(
        ["java", *tool_jvm_options(), "-cp", cp, "TxnV2Check", bootstrap, topic, txn_id, group],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    described = ok(kafka_tool(TRANSACTIONS, "--bootstrap-server", bootstrap, "describe",
                              "--transactional-id", txn_id))  # fmt: skip
    header, row = [line.split() for line in described.strip().splitlines()]
    state = dict(zip(header, row, strict=False))
    return {
        "steps": done.stdout.split("\n"),
        "read_committed": [v for _, v in read_to_end(bootstrap, topic, "read_committed")],
        "committed_offset": _committed(bootstrap, group, topic),
        "final_state": (
            state["TransactionState"],
            state["ProducerEpoch"],
            state["CurrentTransactionStartTimeMs"] != "None",  # kept once complete
        ),
    }


def test_java_producer_on_transactions_v2(
    txn_v2_classpath: str, kafka_peer: Any, shoal_target: Any
) -> None:
    shoal = run_check(txn_v2_classpath, shoal_target.bootstrap_servers)
    assert shoal["read_committed"] == [b"c1", b"c2", b"c3", b"o1", b"s1"]
    assert shoal["committed_offset"] == 7
    assert shoal["steps"][:3] == ["COMMITTED", "ABORTED", "OFFSETS"]
    assert shoal["steps"][3].startswith("FENCED ")
    # 3 transactions (+3), the successor's init (+1) and its transaction (+1).
    assert shoal["final_state"] == ("CompleteCommit", "5", True)
    assert run_check(txn_v2_classpath, kafka_peer.bootstrap_servers) == shoal
