"""``shoal console`` against the 3-broker Kafka cluster (issue 21): its overview lists the three
brokers, a topic's partitions show their leaders, replicas and in-sync replicas spread over
them, a group's lag, browsing, producing and a DLQ redrive work; a broker killed shows as down
while the console keeps answering, and as up again once it is back."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from shoal.protocol import ApiKey
from tests.peers.kafka_cluster import NODES, KafkaCluster
from tests.server.wire import WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CSRF: Final = {"X-Shoal-Admin": "1"}
TOPIC: Final = "console-orders"
DLQ: Final = f"{TOPIC}.dlq"
PARTITIONS: Final = 3
KEYS: Final = [f"order-{i}" for i in range(6)]
GROUP: Final = "console-auditors"
REQUEST_TIMEOUT_S: Final = 60.0
"""One console request: a produce while the cluster elects new leaders can take seconds."""
CHANGE_TIMEOUT_S: Final = 120.0
"""Bound on a broker being seen down (its session timing out) or up again (a JVM restarting
on 2 shared cores): a bound on a hang, not a timing."""
POLL_S: Final = 0.25


@contextmanager
def shoal_console(bootstrap: str) -> Iterator[httpx.Client]:
    """``shoal console --bootstrap <cluster>`` as a user starts it, in its own process."""
    command = [sys.executable, "-m", "shoal.cli", "console", "--bootstrap", bootstrap]
    with subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # printed once the port is bound
            assert line.startswith("shoal console on http://127.0.0.1:"), line
            url = line.split(" on ")[1].strip()
            with httpx.Client(
                base_url=url + "api/v1", headers=CSRF, timeout=REQUEST_TIMEOUT_S
            ) as client:
                yield client
            assert process.poll() is None, "the console exited"
        finally:
            process.terminate()
            process.wait(REQUEST_TIMEOUT_S)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def until(condition: Callable[[], bool], what: str, detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + CHANGE_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}{detail()}"
        time.sleep(POLL_S)


def statuses(console: httpx.Client) -> dict[int, str]:
    return {b["node_id"]: b["status"] for b in ok(console.get("/broker"))["brokers"]}


def leaders(console: httpx.Client) -> set[int | None]:
    """The topic's partitions' leaders (None: a partition without one); {None} while the
    console answers with an error (a partition's ListOffsets while its leader moves)."""
    answer = console.get(f"/topics/{TOPIC}")
    if answer.status_code != 200:
        return {None}
    return {p["leader"] for p in answer.json()["partitions"]}


LAST_GROUP_ANSWER: list[str] = [""]
"""The console's last answer about the group, for a failure's message."""


def coordinator(cluster: KafkaCluster) -> int:
    """The group's coordinator, by FindCoordinator (v4: a list of keys; type 0, a group)."""
    with WireClient(cluster.bootstrap_servers.split(",")[0]) as client:
        asked = {"key_type": 0, "coordinator_keys": [GROUP]}
        (found,) = client.request(ApiKey.FIND_COORDINATOR, 4, asked).coordinators
    assert found.error_code == 0, found
    return int(found.node_id)


def lag(console: httpx.Client) -> int | None:
    """The group's total lag; None while the console answers with an error."""
    answer = console.get(f"/groups/{GROUP}")
    LAST_GROUP_ANSWER[0] = f"{answer.status_code} {answer.text}"
    if answer.status_code != 200:
        return None
    return sum(o["lag"] for o in answer.json()["offsets"])


def commit_at_start(bootstrap: str) -> None:
    """The group commits offset 0 on every partition (a commit, no join): all is lag."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "log_level": 0})
    try:
        offsets = [TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def browse(console: httpx.Client, topic: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = ok(console.get(f"/topics/{topic}/messages"))["messages"]
    return messages


def check_topic_and_group(console: httpx.Client, cluster: KafkaCluster) -> None:
    created = ok(console.post("/topics", json={"name": TOPIC, "partitions": PARTITIONS}), 201)
    every = list(range(1, NODES + 1))
    for partition in created["partitions"]:
        assert sorted(partition["replicas"]) == every  # the cluster's replication factor 3
        assert sorted(partition["isr"]) == every
    # Kafka spreads the leaders over the brokers.
    assert len({p["leader"] for p in created["partitions"]}) == PARTITIONS
    for key in KEYS:
        ok(console.post(f"/topics/{TOPIC}/messages", json={"key": key, "value": "v"}), 201)
    assert sorted(m["key"]["data"] for m in browse(console, TOPIC)) == KEYS
    commit_at_start(cluster.bootstrap_servers)
    group = ok(console.get(f"/groups/{GROUP}"))
    assert sum(o["lag"] for o in group["offsets"]) == len(KEYS)
    assert {o["topic"] for o in group["offsets"]} == {TOPIC}
    assert lag(console) == len(KEYS)


def check_redrive(console: httpx.Client) -> None:
    """As the DLQ page does: each DLQ record back to its original topic, ``redrive_from``
    naming the DLQ, the ``shoal.dlq.*`` headers left behind."""
    ok(console.post("/topics", json={"name": DLQ, "partitions": 1}), 201)
    dead = {
        "key": "order-refused",
        "value": "v",
        "headers": [{"key": "shoal.dlq.original.topic", "value": TOPIC}],
    }
    ok(console.post(f"/topics/{DLQ}/messages", json=dead), 201)
    (record,) = browse(console, DLQ)
    back = {"key": record["key"]["data"], "value": record["value"]["data"], "redrive_from": DLQ}
    refused = console.post(f"/topics/{DLQ}/messages", json=back)  # not into the DLQ itself
    assert refused.status_code == 400 and refused.json()["error"] == "redrive_target_refused"
    ok(console.post(f"/topics/{TOPIC}/messages", json=back), 201)
    redriven = ok(console.get(f"/topics/{TOPIC}/messages", params={"key": "order-refused"}))
    assert [m["key"]["data"] for m in redriven["messages"]] == ["order-refused"]


def test_console_on_the_cluster_through_a_broker_failure(healthy_cluster: KafkaCluster) -> None:
    cluster = healthy_cluster
    with shoal_console(cluster.bootstrap_servers) as console:
        overview = ok(console.get("/broker"))
        assert [(b["node_id"], b["host"], b["port"], b["status"]) for b in overview["brokers"]] == [
            (n.node_id, "127.0.0.1", n.port, "up") for n in cluster.nodes
        ]
        check_topic_and_group(console, cluster)
        check_redrive(console)

        # The group's coordinator dies (it leads one of the topic's partitions too, as the
        # leaders are spread): no clean shutdown, no hand-off.
        victim = coordinator(cluster)
        assert victim in leaders(console)
        cluster.kill(victim)
        until(lambda: statuses(console)[victim] == "down", f"broker {victim} shown down")
        assert set(statuses(console).values()) == {"up", "down"}
        # The console still answers, on the brokers left: a new leader, producing, browsing.
        until(lambda: leaders(console).isdisjoint({victim, None}), f"leaders other than {victim}")
        ok(console.post(f"/topics/{TOPIC}/messages", json={"key": "after", "value": "v"}), 201)
        assert len(browse(console, TOPIC)) == len(KEYS) + 2  # with the redriven one
        # The group's coordinator may have been the victim too: once the offsets topic has a
        # new leader there (and the console's Admin client, renewed after a request that got
        # no answer, has found it), the lag counts the message produced since.
        until(
            lambda: lag(console) == len(KEYS) + 2,
            "the group's lag from the new coordinator",
            lambda: f"; the console's last answer: {LAST_GROUP_ANSWER[0]}",
        )

        cluster.restart(victim)
        until(lambda: statuses(console)[victim] == "up", f"broker {victim} shown up again")
        assert len(browse(console, TOPIC)) == len(KEYS) + 2
