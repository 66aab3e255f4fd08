"""An app in its own process, stopped by SIGTERM or killed by SIGKILL, against a real broker.

SIGTERM: in-flight records finish, what finished is committed, and a restart neither skips nor
repeats a record. SIGKILL between a handler's effect and the offset commit: the record is
delivered again, and the idempotent store (effect and dedup row in one SQLite transaction)
applies its effect once; without it the effect is applied twice (the control).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import confluent_kafka
import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey
from tests.broker.transactions.clients import read_all
from tests.server.wire import WireClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # app processes killed and restarted


@pytest.fixture
def shoal_broker(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    """No initial rebalance delay (as the Kafka peer runs): the default 3 s held back each
    group's first join, and every join after a restart into an emptied group."""
    return shoal_broker_factory(group_initial_rebalance_delay_ms=0)


WAIT_S = 60.0

APP = textwrap.dedent(
    """
    import asyncio, os, sys
    from shoal import App

    # A short session: the killed member's partitions move on in seconds, not 45.
    query = os.environ.get("QUERY", "")
    app = App(f"kafka://{os.environ['BOOTSTRAP']}?session.timeout.ms=6000{query}")
    mode = os.environ["MODE"]
    out = os.environ["OUT"]
    block_at = int(os.environ.get("BLOCK_AT", "-1"))

    if mode == "eos":
        @app.subscriber(os.environ["TOPIC"], group="g", output=out, exactly_once=True)
        async def copy(n: int) -> int:
            if n == block_at:
                await asyncio.Event().wait()  # never returns: its transaction stays open
            return n
    elif mode == "slow":
        @app.subscriber(os.environ["TOPIC"], group="g")
        async def slow(n: int) -> None:
            await asyncio.sleep(0.01)
            with open(out, "a") as f:
                f.write(f"{n}\\n")
    else:
        @app.subscriber(os.environ["TOPIC"], group="g", idempotent=(mode == "idempotent"))
        async def effect(n: int, msg) -> None:
            db = msg.transaction
            if db is None:  # the control: the same effect, without the store
                import sqlite3
                db = sqlite3.connect(out, isolation_level=None)
            db.execute("CREATE TABLE IF NOT EXISTS effects (n INTEGER)")
            db.execute("INSERT INTO effects VALUES (?)", (n,))
            if n == block_at:
                await asyncio.Event().wait()  # never returns: the batch is never committed

    if __name__ == "__main__":
        app.run()
    """
)


def produce(bootstrap: str, topic: str, values: range) -> None:
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([confluent_kafka.admin.NewTopic(topic, 1, 1)])[topic].result(10)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for n in values:
        # The id a shoal publisher would set; the idempotent subscriber deduplicates on it.
        producer.produce(topic, str(n).encode(), headers=[("shoal.message-id", f"{topic}-{n}")])
    assert producer.flush(10) == 0


def committed(bootstrap: str, topic: str) -> int:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "g"})
    try:
        (tp,) = consumer.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)
        return max(int(tp.offset), 0)
    finally:
        consumer.close()


def start_app(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    script = tmp_path / "crash_app.py"
    script.write_text(APP)
    with (tmp_path / "app.log").open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the app exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def lines(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_sigterm_finishes_in_flight_commits_what_finished_and_a_restart_continues(
    shoal_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    bootstrap, topic, out = shoal_broker.bootstrap_servers, "sigterm", tmp_path / "handled.txt"
    produce(bootstrap, topic, range(300))
    env = {"BOOTSTRAP": bootstrap, "MODE": "slow", "OUT": str(out), "TOPIC": topic}

    first = start_app(tmp_path, env)
    wait_for(lambda: len(lines(out)) >= 40, "40 records handled", first)
    first.send_signal(signal.SIGTERM)
    assert first.wait(WAIT_S) == 0, (tmp_path / "app.log").read_text()[-3000:]
    handled_first = lines(out)
    assert handled_first == list(range(len(handled_first)))  # in order, no gap
    assert len(handled_first) < 300  # it really stopped early
    # Everything that finished was committed, and nothing that did not.
    assert committed(bootstrap, topic) == len(handled_first)

    second = start_app(tmp_path, env)
    wait_for(lambda: len(lines(out)) >= 300, "all 300 records", second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(WAIT_S) == 0
    assert lines(out) == list(range(300))  # neither skipped nor repeated
    assert committed(bootstrap, topic) == 300


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "control"])
def test_sigkill_between_effect_and_commit(
    shoal_broker: EmbeddedBroker, tmp_path: Path, idempotent: bool
) -> None:
    bootstrap, topic = shoal_broker.bootstrap_servers, f"sigkill-{idempotent}"
    db = tmp_path / ("shoal-idempotency.db" if idempotent else "effects.db")
    produce(bootstrap, topic, range(10))
    env = {
        "BOOTSTRAP": bootstrap,
        "MODE": "idempotent" if idempotent else "plain",
        "OUT": str(db),
        "TOPIC": topic,
    }

    def effects() -> list[int]:
        if not db.exists():
            return []
        try:
            with sqlite3.connect(db) as conn:
                return sorted(n for (n,) in conn.execute("SELECT n FROM effects"))
        except sqlite3.OperationalError:
            return []  # the table does not exist yet

    first = start_app(tmp_path, {**env, "BLOCK_AT": "6"})
    # Records 0-5 applied their effect (and, idempotent, committed their dedup row); record 6
    # blocks, so the batch's offsets are never committed. Kill it there.
    wait_for(lambda: effects()[:6] == list(range(6)), "effects of records 0-5", first)
    first.kill()
    first.wait(WAIT_S)
    assert committed(bootstrap, topic) < 6  # the window exists: effects ahead of the commit

    second = start_app(tmp_path, env)
    wait_for(lambda: committed(bootstrap, topic) == 10, "every offset committed", second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(WAIT_S) == 0
    applied = effects()
    if idempotent:
        assert applied == list(range(10))  # each effect once, including the redelivered ones
    else:
        # Without the store the redelivered records apply their effects again.
        assert len(applied) > 10 and sorted(set(applied)) == list(range(10))


def open_transactions(bootstrap: str) -> list[str]:
    with WireClient(bootstrap) as client:
        listed = client.request(
            ApiKey.LIST_TRANSACTIONS,
            1,
            {"state_filters": ["Ongoing"], "producer_id_filters": [], "duration_filter": -1},
        )
    return [s.transactional_id for s in listed.transaction_states]


def test_a_restarted_static_exactly_once_member_aborts_what_its_predecessor_left_open(
    shoal_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """SIGKILLed inside a transaction, a static member (group.instance.id) restarts with the
    same transactional id: its init fences the dead instance's producer and the coordinator
    aborts that transaction at once. With a new id per start it stayed open for
    transaction.timeout.ms (a minute), holding read_committed readers of the output back."""
    bootstrap, topic, out = shoal_broker.bootstrap_servers, "eos-static", "eos-static-out"
    produce(bootstrap, topic, range(10))
    env = {
        "BOOTSTRAP": bootstrap,
        "MODE": "eos",
        "OUT": out,
        "TOPIC": topic,
        "QUERY": "&group.instance.id=copier-1",
    }
    first = start_app(tmp_path, {**env, "BLOCK_AT": "6"})
    # Outputs of records 0-5 went out in the fetch's transaction; record 6 blocks its commit.
    wait_for(lambda: open_transactions(bootstrap) != [], "an open transaction", first)
    first.kill()
    first.wait(WAIT_S)
    assert committed(bootstrap, topic) == 0

    second = start_app(tmp_path, env)
    try:
        wait_for(lambda: committed(bootstrap, topic) == 10, "every offset committed", second)
        assert open_transactions(bootstrap) == []  # the dead instance's was aborted, not left
        second.send_signal(signal.SIGTERM)
        assert second.wait(WAIT_S) == 0
    finally:
        second.kill()
        second.wait(WAIT_S)
    outputs = read_all(shoal_broker, out, "read_committed", 10, partitions=1)
    assert sorted(int(v) for v in outputs) == list(range(10))  # each once: the first aborted
